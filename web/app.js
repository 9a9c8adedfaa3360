// Parley web client: the connection status, signing in (log in, register,
// resume, log out) and who is online. Speaks PROTOCOL.md through protocol.js.

import { ProtocolClient } from './protocol.js';
import { PresencePanel } from './presence.js';
import { RoomsController } from './rooms.js';
import { PmController } from './pm.js';
import { Navigator } from './nav.js';
import { ConnectionStatus } from './connection.js';
import { Outbox } from './outbox.js';
import { toast } from './toast.js';
import { PasswordDialog, passwordProblem } from './account-dialog.js';
import { MentionAutocomplete } from './mentions.js';
import { TypingSender, TypingIndicator, roomChat, pmChat } from './typing.js';
import { Notifier } from './notifications.js';
import { RoomAdmin } from './room-settings.js';
import { SearchPanel } from './search.js';
import { Attachments } from './attachments.js';

const RESUME_RETRY_MS = 3000;
const TOKEN_KEY = 'parley.token';

// The server's rules (PROTOCOL.md "Names, limits, times"), checked here first
// so that a person learns of a typo without a round trip (passwords:
// account-dialog.js)
const USERNAME_PATTERN = /^[A-Za-z0-9_.-]{3,32}$/;

const $ = (id) => document.getElementById(id);

// Where the page is: 'signin', 'resuming' or 'dashboard'
let view = null;
let currentUser = null;         // the signed-in user's name, while on the dashboard
let sessionToken = null;        // the token this session was signed in with
let boundToken = null;          // the token this connection is signed in with, until it closes
// Tokens whose session ended in this page (logged out here or from elsewhere,
// replaced by a password change here, refused on resume): when another tab
// stores one of them, this page does not follow it (the 'storage' listener)
const endedTokens = new Set();
let sessionReady = false;       // this connection is signed in and the dashboard loaded
let busy = false;               // a sign-in request is in flight
let loggingOut = false;         // our own auth.logout is in flight
let resumeTimer = null;
let baseTitle = document.title; // the tab's title without the unread count ("alice · Parley")

const client = new ProtocolClient();
const presence = new PresencePanel({
    list: $('users'), count: $('users-count'), empty: $('users-empty'), panel: $('users-panel'),
});
const nav = new Navigator();
const outbox = new Outbox(client);
const rooms = new RoomsController(client, {
    nav, toast, outbox, unreadChanged: renderTitle, users: () => [...presence.users.keys()],
});
const pm = new PmController(client, {
    nav, outbox, unreadChanged: renderTitle,
    presenceOf: (name) => presence.users.get(name) ?? [...presence.users.values()]
        .find((entry) => entry.user.toLowerCase() === name.toLowerCase()),
});
nav.attach({ rooms, pm, people: () => [...presence.users.keys()] });
const search = new SearchPanel(client, { rooms, pm, self: () => currentUser });
presence.onMessage = (user) => pm.open(user);
wireConversationFeatures();

const status = new ConnectionStatus(client, { online: (connected) => setOnline(connected && sessionReady) });

// --- token, kept across reloads ---------------------------------------------

function storedToken() {
    try {
        return localStorage.getItem(TOKEN_KEY);
    } catch {
        return null;    // storage disabled: sessions last as long as the page
    }
}

function storeToken(token) {
    try {
        if (token)
            localStorage.setItem(TOKEN_KEY, token);
        else
            localStorage.removeItem(TOKEN_KEY);
    } catch {
        // storage disabled: nothing to keep
    }
}

// --- the tab's title: the unread total of rooms and conversations -----------

function renderTitle() {
    const total = currentUser ? rooms.totalUnread + pm.totalUnread : 0;
    document.title = total > 0 ? `(${total}) ${baseTitle}` : baseTitle;
}

function setBaseTitle(text) {
    baseTitle = text;
    renderTitle();
}

// --- connection ---------------------------------------------------------------

// Online: Send enabled, presence believed; offline: the page says it may be old
function setOnline(online) {
    presence.markStale(!online);
    rooms.setOnline(online);
    pm.setOnline(online);
}

client.on(':open', () => {
    // A new connection is a new, unauthenticated session: sign it in again
    resume();
});

client.on(':close', () => {
    boundToken = null;
    clearTimeout(resumeTimer);
    sessionReady = false;
    status.setReady(false);
    outbox.setReady(false);
    setOnline(false);
});

function showConnectionDetail(text) {
    $('resume-error').textContent = text ?? '';
    $('resume-error').hidden = !text;
}

// --- views ------------------------------------------------------------------

function showView(next, { focus = true } = {}) {
    const changed = view !== next;
    view = next;
    $('signin-view').hidden = next !== 'signin';
    $('resuming-view').hidden = next !== 'resuming';
    $('dashboard-view').hidden = next !== 'dashboard';
    $('account').hidden = next !== 'dashboard';
    document.body.classList.toggle('signed-in', next === 'dashboard');
    if (!changed || !focus)
        return;
    if (next === 'signin')
        $('username').focus();
    else if (next === 'dashboard')
        $('dashboard-title').focus();
}

// Signed out: the socket closes (an unauthenticated one would be closed by the
// server after 30 s anyway) and nothing of the last user stays on the page
function showSignin(notice = null, { forgetOutbox = false } = {}) {
    currentUser = null;
    boundToken = null;
    sessionReady = false;
    status.setReady(false);
    outbox.unload({ forget: forgetOutbox });
    client.stop();
    status.setActive(false);
    nav.leave();
    presence.clear();
    rooms.leaveDashboard();
    pm.leaveDashboard();
    search.clear();
    setNotice(notice);
    showView('signin');
}

async function enterDashboard(user, token) {
    currentUser = user;
    sessionToken = token;
    boundToken = token;
    storeToken(token);
    $('account-name').textContent = user;
    setBaseTitle(`${user} · Parley`);
    presence.setSelf(user);
    outbox.load(user);
    showView('dashboard');
    status.setActive(true);
    showConnectionDetail(null);
    await Promise.all([refreshPresence(), rooms.enter(user), pm.enter(user)]);
    if (!client.connected || currentUser !== user)
        return;
    sessionReady = true;
    status.setReady(true);
    setOnline(true);
    // Caught up: what the outbox holds is sent (or repeated, with its nonce)
    outbox.setReady(true);
    await nav.restore(user);
}

async function refreshPresence() {
    try {
        // Every page: a long list comes in pages with next (PROTOCOL.md 1.1)
        const users = [];
        let cursor;
        do {
            const reply = await client.request('presence.list', cursor ? { cursor } : {});
            users.push(...(reply.users ?? []));
            cursor = reply.next;
        } while (cursor);
        presence.setAll(users);
        rooms.updatePresence(users);
        pm.updatePresence();
    } catch (error) {
        if (error.code !== 'disconnected')
            presence.showError(error.message);
    }
}

// The token to resume with: the stored one; or, while this page shows the
// dashboard, this session's own when none is stored (another tab removed it,
// see keepToken; or storage is disabled). The server says whether it is
// still good, and enterDashboard stores one that is.
function resumeToken() {
    return storedToken() ?? (view === 'dashboard' ? sessionToken : null);
}

// Signs a fresh connection in again with the stored token
async function resume() {
    const token = resumeToken();
    if (!token) {
        // The token this page set out to resume with is gone: another tab
        // forgot it before this connection opened
        if (view === 'resuming')
            showSignin();
        return;
    }
    clearTimeout(resumeTimer);
    if (view !== 'dashboard')
        showView('resuming');
    try {
        const reply = await client.request('auth.resume', { token });
        await enterDashboard(reply.user, reply.token ?? token);
    } catch (error) {
        if (error.code === 'invalid_token') {
            endedTokens.add(token);
            storeToken(null);
            setBaseTitle('Parley');
            showSignin('Your session has ended; please log in again.');
        } else if (error.code === 'already_authenticated') {
            // A sign-in on this connection won the race; nothing to do
        } else if (error.code !== 'disconnected' && client.connected) {
            // The service is down or slow: keep the token and try again
            showConnectionDetail(`Could not resume your session: ${error.message} Trying again…`);
            resumeTimer = setTimeout(resume, RESUME_RETRY_MS);
        }
        // disconnected: the next ':open' resumes
    }
}

// --- signing in -------------------------------------------------------------

function mode() {
    return $('mode-register').checked ? 'register' : 'login';
}

function setNotice(text) {
    const notice = $('signin-notice');
    notice.textContent = text ?? '';
    notice.hidden = !text;
}

function setFormError(text) {
    const alert = $('signin-error');
    alert.textContent = text ?? '';
    alert.hidden = !text;
}

function setFieldError(input, text) {
    input.classList.toggle('is-invalid', Boolean(text));
    input.setAttribute('aria-invalid', text ? 'true' : 'false');
    $(`${input.id}-error`).textContent = text ?? '';
}

function applyMode() {
    const registering = mode() === 'register';
    $('signin-title').textContent = registering ? 'Create a Parley account' : 'Log in to Parley';
    $('signin-submit').textContent = registering ? 'Register' : 'Log in';
    $('password').autocomplete = registering ? 'new-password' : 'current-password';
    $('username-hint').hidden = !registering;
    $('password-hint').hidden = !registering;
    setFormError(null);
    setFieldError($('username'), null);
    setFieldError($('password'), null);
}

function usernameProblem(name) {
    if (name.length === 0)
        return 'Enter a username.';
    if (!USERNAME_PATTERN.test(name))
        return 'A username has 3 to 32 characters: letters, digits, dots, dashes or underscores.';
    return null;
}

// Which field a server error is about, so that the focus goes there
const ERROR_FIELD = {
    invalid_username: 'username',
    username_taken: 'username',
    weak_password: 'password',
    bad_credentials: 'password',
};

async function submitSignin(event) {
    event.preventDefault();
    if (busy)
        return;
    const usernameInput = $('username');
    const passwordInput = $('password');
    const username = usernameInput.value.trim();
    const password = passwordInput.value;
    const registering = mode() === 'register';

    setFormError(null);
    const nameError = usernameProblem(username);
    // Logging in only needs a password; its length rules are for new accounts
    const passwordError = registering ? passwordProblem(password)
        : password.length === 0 ? 'Enter your password.' : null;
    setFieldError(usernameInput, nameError);
    setFieldError(passwordInput, passwordError);
    if (nameError || passwordError) {
        (nameError ? usernameInput : passwordInput).focus();
        return;
    }

    busy = true;
    const button = $('signin-submit');
    button.disabled = true;
    button.textContent = registering ? 'Creating your account…' : 'Logging in…';
    try {
        // The socket opens now, to be signed in at once
        await client.ready();
        const reply = await client.request(registering ? 'auth.register' : 'auth.login',
            { username, password });
        passwordInput.value = '';
        setNotice(null);
        await enterDashboard(reply.user, reply.token);
    } catch (error) {
        if (view === 'signin')
            client.stop();      // not left open unauthenticated
        setFormError(error.message || 'Something went wrong; try again.');
        const field = ERROR_FIELD[error.code];
        if (field) {
            $(field).classList.add('is-invalid');
            $(field).setAttribute('aria-invalid', 'true');
            $(field).focus();
            $(field).select();
        }
    } finally {
        busy = false;
        button.disabled = false;
        button.textContent = registering ? 'Register' : 'Log in';
    }
}

async function logout() {
    loggingOut = true;
    $('logout').disabled = true;
    try {
        await client.request('auth.logout');
    } catch (error) {
        // Even when the server could not be told, this browser forgets the session
        if (error.code !== 'disconnected')
            console.warn('Parley: auth.logout failed:', error.message);
    } finally {
        loggingOut = false;
        $('logout').disabled = false;
    }
    endedTokens.add(sessionToken);
    storeToken(null);
    setBaseTitle('Parley');
    showSignin('You have logged out.', { forgetOutbox: true });
}

// Another tab or device logged this token out, or changed the password: this
// session is signed out too. The stored token is forgotten only when it is
// this session's: a tab of this browser that changed the password keeps its
// fresh one there, and this tab then joins that session (below).
client.on('logged_out', () => {
    if (loggingOut || view === 'signin')
        return;
    const own = sessionToken;
    // localStorage is only eventually consistent between a browser's
    // processes: this may read the old token after the tab that changed the
    // password stored its fresh one, and so remove the fresh one. That tab
    // stores it again (keepToken), and this one joins it then.
    const stored = storedToken();
    if (stored === own)
        storeToken(null);
    endedTokens.add(own);
    sessionToken = null;
    setBaseTitle('Parley');
    showSignin('You were logged out from another tab or window.');
    if (stored && stored !== own && !endedTokens.has(stored))
        startSession();
});

// The password was changed here: this session goes on with its fresh token
// (the old one is revoked with every other)
const passwordDialog = new PasswordDialog(client, {
    user: () => currentUser,
    changed: (token) => {
        endedTokens.add(sessionToken);
        sessionToken = token;
        boundToken = token;
        storeToken(token);
    },
});

// Another tab removed the stored token while this connection is signed in.
// It may have removed a token that this page has since replaced: a tab logged
// out by this page's password change can read its old token after this page
// stored the fresh one (above), and remove the fresh one. So this page stores
// its token again, once a ping on its own connection is answered with the
// session still signed in: had the token been logged out (Log out in another
// tab signed in with the same token), the server would have sent logged_out to
// this session before that answer (auth tells the other sessions before it
// answers the one that logged out), and the handler above has signed this page
// out. Disconnected, the next ':open' resumes with this session's token
// (resumeToken), and enterDashboard stores it if it is still good.
async function keepToken() {
    const token = boundToken;
    if (!token || loggingOut)
        return;
    try {
        await client.request('ping');
    } catch {
        return;         // the connection is lost: see above
    }
    if (boundToken === token && !loggingOut && storedToken() === null)
        storeToken(token);
}

window.addEventListener('storage', (event) => {
    if (event.key !== TOKEN_KEY)
        return;
    // Another tab of this browser signed in: this one joins that session
    // (unless that session is one that ended here, stored again by a tab that
    // does not know it yet)
    if (event.newValue && view === 'signin' && !busy && !endedTokens.has(event.newValue))
        startSession();
    else if (event.newValue === null)
        keepToken();
});

client.on('presence', (event) => {
    if (view === 'dashboard') {
        presence.update(event.users ?? []);
        rooms.updatePresence(event.users ?? []);
        pm.updatePresence();
    }
});

// --- mentions, typing, notifications, room administration, files (1.1) ------

function wireConversationFeatures() {
    // `@` offers the members of the room on screen (known from room.join,
    // room.members and presence), not oneself
    new MentionAutocomplete($('composer-text'), {
        candidates: () => [...rooms.members.members].filter(([user]) => user !== currentUser)
            .map(([user, online]) => ({ user, online })),
    });
    const typing = new TypingSender(client);
    typing.attach($('composer-text'), () => (rooms.room?.joined && !rooms.deleted ? { room: rooms.room.name } : null));
    typing.attach($('pm-text'), () => (pm.current ? { to: pm.nameOf(pm.current) } : null));
    new TypingIndicator(client, {
        self: () => currentUser,
        views: [
            { line: $('typing'), current: () => (rooms.current ? roomChat(rooms.current) : null) },
            { line: $('pm-typing'), current: () => (pm.current ? pmChat(pm.current) : null) },
        ],
    });
    new Notifier(client, {
        self: () => currentUser,
        toast,
        open: (kind, name) => (kind === 'room' ? rooms.open(name) : pm.open(name)),
        chats: [
            { button: $('room-mute'), kind: 'room', current: () => rooms.room?.name ?? rooms.current },
            { button: $('pm-mute'), kind: 'pm', current: () => (pm.current ? pm.nameOf(pm.current) : null) },
        ],
    });
    new RoomAdmin(client, { rooms, toast });
    // Files: uploaded over HTTP with this session's token
    for (const chatView of [rooms.view, pm.view])
        new Attachments(chatView, { token: () => sessionToken });
}

// --- start ------------------------------------------------------------------

$('signin-form').addEventListener('submit', submitSignin);
$('mode-login').addEventListener('change', applyMode);
$('mode-register').addEventListener('change', applyMode);
$('logout').addEventListener('click', logout);
$('password-open').addEventListener('click', () => passwordDialog.open());
for (const input of [$('username'), $('password')]) {
    input.addEventListener('input', () => {
        if (input.classList.contains('is-invalid'))
            setFieldError(input, null);
    });
}

// With a token, the socket opens and the session resumes on ':open'
function startSession() {
    showView('resuming', { focus: false });
    status.setActive(true);
    client.start();
}

applyMode();
// Without a token no socket opens until the user signs in
if (storedToken())
    startSession();
else
    showSignin();
