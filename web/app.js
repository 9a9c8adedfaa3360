// Parley web client: connection status for now; the chat UI comes later.
// Speaks the client protocol (PROTOCOL.md) over the WebSocket at /ws.

const PING_INTERVAL_MS = 15000;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 15000;

const statusBadge = document.getElementById('status');
const latencyText = document.getElementById('latency');
const statusDetail = document.getElementById('status-detail');

let socket = null;
let nextId = 1;
let retryDelay = RETRY_FIRST_MS;
let pingTimer = null;
const pending = new Map();   // request id -> { resolve, reject }

function showStatus(text, tone, detail) {
  statusBadge.textContent = text;
  statusBadge.className = `badge text-bg-${tone}`;
  statusDetail.textContent = detail;
}

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

// Sends one request; resolves with the ok frame, rejects with the error frame.
function request(type, fields = {}) {
  return new Promise((resolve, reject) => {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      reject(new Error('not connected'));
      return;
    }
    const id = nextId++;
    pending.set(id, { resolve, reject });
    socket.send(JSON.stringify({ type, id, ...fields }));
  });
}

async function ping() {
  const started = performance.now();
  await request('ping');
  return performance.now() - started;
}

async function measure() {
  try {
    const elapsed = await ping();
    latencyText.textContent = `${elapsed.toFixed(1)} ms`;
    return true;
  } catch (error) {
    return false;
  }
}

function handleFrame(event) {
  let frame;
  try {
    frame = JSON.parse(event.data);
  } catch {
    return;
  }
  if (frame.id !== undefined && pending.has(frame.id)) {
    const waiter = pending.get(frame.id);
    pending.delete(frame.id);
    if (frame.type === 'error') {
      waiter.reject(frame);
    } else {
      waiter.resolve(frame);
    }
  }
  // Events (frames without an id) are for the chat UI, which comes later.
}

function connect() {
  showStatus('Connecting…', 'secondary', 'Connecting to the server…');
  socket = new WebSocket(socketUrl(), 'parley.v1');
  socket.addEventListener('open', async () => {
    if (await measure()) {
      retryDelay = RETRY_FIRST_MS;
      showStatus('Connected', 'success', 'Connected to the server.');
      pingTimer = setInterval(measure, PING_INTERVAL_MS);
    }
  });
  socket.addEventListener('message', handleFrame);
  socket.addEventListener('close', () => {
    clearInterval(pingTimer);
    pingTimer = null;
    for (const waiter of pending.values()) {
      waiter.reject(new Error('disconnected'));
    }
    pending.clear();
    latencyText.textContent = '';
    const seconds = Math.round(retryDelay / 100) / 10;
    showStatus('Disconnected — retrying', 'danger',
      `The connection to the server was lost; trying again in ${seconds} s.`);
    setTimeout(connect, retryDelay);
    // Back off, with jitter so that many clients do not return at once.
    retryDelay = Math.min(RETRY_MAX_MS, retryDelay * 2) * (0.8 + Math.random() * 0.4);
  });
}

connect();
