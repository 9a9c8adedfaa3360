// Files (PROTOCOL.md 1.1 "Files"): attaching one to a message, by the paper
// clip beside the composer, by dropping it on the timeline or by pasting an
// image into the composer; its upload to the gateway (`POST /files`, with the
// session's token) through XMLHttpRequest for its progress, shown over the
// composer with Cancel; then the message goes through the outbox with `file`
// (the id) beside its text, which may be empty. And what a message with a
// file shows: a PNG, JPEG, GIF or WebP image inline in a box of fixed shape
// (the protocol gives no dimensions, so the box is reserved before the image
// arrives and nothing below it moves; the picture is fitted inside it), a
// click opens it full size; any other file a download link with its name and
// size. A file's name is only ever text: textContent and attributes, never
// HTML. A ChatView calls this as its `attachments`.

import { element } from './chatview.js';

// Served inline by the gateway, shown inline here (SVG is not: it can script)
export const INLINE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const NAME_MAX_BYTES = 255;         // the server's limit of a file name, in UTF-8 bytes
const PREVIEW_MAX_BYTES = 4 << 20;  // an image attached shows itself over the composer up to this size
const CACHE_MAX = 300;              // file nodes kept across renders (an image is not fetched and drawn again)
const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const SVG = 'http://www.w3.org/2000/svg';

// A file of an entry as the protocol gives it ({id, name, size, type}), or null
export function validFile(file) {
    return file !== null && typeof file === 'object' && typeof file.id === 'string' && ID_PATTERN.test(file.id)
        && typeof file.name === 'string' ? file : null;
}

export const fileUrl = (file) => `/files/${encodeURIComponent(file.id)}`;
export const isInlineImage = (file) => INLINE_TYPES.has(String(file?.type ?? '').toLowerCase());

// 532 B, 12.4 KB, 3.1 MB (powers of 1024)
export function formatSize(bytes) {
    if (!Number.isFinite(bytes) || bytes < 0)
        return '';
    if (bytes < 1024)
        return `${bytes} B`;
    const units = ['KB', 'MB', 'GB'];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit += 1;
    }
    return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

// A name the server takes: no control character, no `/`, at most 255 bytes
// (cut at a character, the extension kept); a file without one gets "file"
export function uploadName(name) {
    const clean = String(name ?? '').replace(/[\u0000-\u001f\u007f/]/g, '_').trim() || 'file';
    const bytes = (text) => new TextEncoder().encode(text).length;
    if (bytes(clean) <= NAME_MAX_BYTES)
        return clean;
    const dot = clean.lastIndexOf('.');
    const extension = dot > 0 && clean.length - dot <= 16 ? clean.slice(dot) : '';
    const chars = [...clean.slice(0, clean.length - extension.length)];
    while (chars.length > 1 && bytes(chars.join('') + extension) > NAME_MAX_BYTES)
        chars.pop();
    return chars.join('') + extension;
}

function icon(paths, className) {
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 16 16');
    svg.setAttribute('width', '16');
    svg.setAttribute('height', '16');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('class', className);
    for (const data of paths) {
        const path = document.createElementNS(SVG, 'path');
        path.setAttribute('d', data);
        svg.append(path);
    }
    return svg;
}

const clipIcon = () => icon(['M10.5 4.5 5.6 9.4a1.4 1.4 0 0 0 2 2l5.3-5.3a2.8 2.8 0 0 0-4-4L3.6 7.4a4.2 4.2 0 0 0 6 6l4.4-4.4'],
    'attach-icon');
const fileIcon = () => icon(['M4 1.75h5l3.25 3.25v9.25H4z', 'M9 1.75V5h3.25'], 'file-icon');

// --- the upload ----------------------------------------------------------------

// Why an upload failed: a sentence for the person, and whether trying the
// same again may work
export class UploadError extends Error {
    constructor(code, message, { retry = false } = {}) {
        super(message);
        this.code = code;
        this.retry = retry;
    }
}

function uploadError(status, body) {
    const code = typeof body?.error === 'string' ? body.error : '';
    if (status === 413 && code === 'quota_exceeded')
        return new UploadError(code, 'Your storage on the server is full: this file would pass your quota. Files of messages you delete free their space.');
    if (status === 413)
        return new UploadError('too_large', 'This file is larger than the server accepts.');
    if (status === 401)
        return new UploadError('unauthenticated', 'The server did not accept your session for the upload: log in again, then attach the file again.');
    if (status === 400)
        return new UploadError('bad_request', `The server refused this file: ${typeof body?.message === 'string' && body.message ? body.message : 'its name is not valid.'}`);
    if (status === 404 || status === 405)
        return new UploadError('unsupported', 'This server does not take files.');
    if (status === 503 || status === 502 || status === 504)
        return new UploadError('unavailable', 'The server cannot take files right now: try again in a moment.', { retry: true });
    return new UploadError('http', `The upload failed (the server answered ${status}): try again.`, { retry: true });
}

// POST /files with the file as the body; progress(loaded, total) as it goes.
// Returns { done, abort }: done resolves with {id, name, size, type} or
// rejects with an UploadError (code 'aborted' after abort())
export function uploadFile(file, { token, name = uploadName(file.name), progress = () => {} }) {
    const xhr = new XMLHttpRequest();
    const done = new Promise((resolve, reject) => {
        xhr.open('POST', '/files');
        xhr.setRequestHeader('Authorization', `Bearer ${token}`);
        xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
        xhr.setRequestHeader('X-Filename', encodeURIComponent(name));
        xhr.upload.addEventListener('progress', (event) =>
            progress(event.loaded, event.lengthComputable ? event.total : file.size));
        xhr.addEventListener('load', () => {
            let body = null;
            try {
                body = JSON.parse(xhr.responseText);
            } catch {
                // not JSON: the status says enough
            }
            const uploaded = validFile(body?.file);
            if ((xhr.status === 201 || xhr.status === 200) && uploaded)
                resolve(uploaded);
            else
                reject(uploadError(xhr.status, body));
        });
        xhr.addEventListener('error', () => reject(new UploadError('network',
            'The upload failed: the server could not be reached. Check your connection and try again.', { retry: true })));
        xhr.addEventListener('abort', () => reject(new UploadError('aborted', 'The upload was cancelled.')));
        xhr.send(file);
    });
    return { done, abort: () => xhr.abort() };
}

// --- a file in the timeline ------------------------------------------------------

const nodes = new Map();            // file id -> its node, reused by each render (LRU)

// The node of a file in a message: reused across renders, so that an image
// already drawn is not drawn again; a fresh one when the same file shows
// twice in one render
export function fileNode(file, { open }) {
    const cached = nodes.get(file.id);
    if (cached && !(cached.parentNode && !cached.isConnected)) {
        nodes.delete(file.id);
        nodes.set(file.id, cached);
        return cached;
    }
    const node = isInlineImage(file) ? imageNode(file, open) : linkNode(file);
    if (!cached) {
        nodes.set(file.id, node);
        if (nodes.size > CACHE_MAX)
            nodes.delete(nodes.keys().next().value);
    }
    return node;
}

// The image in a box of fixed shape (attachments.css): the box is there
// before a byte of the image, so the timeline never moves when it arrives
function imageNode(file, open) {
    const figure = element('figure', 'attachment attachment-image');
    figure.dataset.fileId = file.id;
    const button = element('button', 'attachment-open');
    button.type = 'button';
    button.title = `${file.name} (${formatSize(file.size)}): open full size`;
    button.setAttribute('aria-label', `Open the image ${file.name} full size`);
    const image = element('img', 'attachment-img');
    image.alt = file.name;
    image.loading = 'lazy';
    image.decoding = 'async';
    image.src = fileUrl(file);
    button.append(image);
    button.addEventListener('click', () => open(file, button));
    const caption = element('figcaption', 'attachment-caption small text-body-secondary');
    const link = element('a', 'attachment-name', file.name);
    link.href = fileUrl(file);
    link.download = file.name;
    caption.append(link, element('span', 'attachment-size', ` · ${formatSize(file.size)}`));
    figure.append(button, caption);
    image.addEventListener('error', () => brokenImage(figure, button, image));
    return figure;
}

// An image that did not load (the server out of reach, the file gone): said
// in its box, with a way to ask for it again without reloading the page
function brokenImage(figure, button, image) {
    if (figure.classList.contains('broken'))
        return;
    figure.classList.add('broken');
    button.disabled = true;
    const retry = element('button', 'btn btn-link btn-sm attachment-retry', 'Try again');
    retry.type = 'button';
    retry.addEventListener('click', () => {
        retry.remove();
        figure.classList.remove('broken');
        button.disabled = false;
        button.replaceChildren(image);
        // The same URL again: a load that failed is not cached
        const url = image.src;
        image.removeAttribute('src');
        image.src = url;
    }, { once: true });
    button.replaceChildren(element('span', 'attachment-missing small', 'Image unavailable.'));
    button.after(retry);
}

function linkNode(file) {
    const link = element('a', 'attachment attachment-file');
    link.dataset.fileId = file.id;
    link.href = fileUrl(file);
    link.download = file.name;
    link.title = `Download ${file.name}`;
    const name = element('span', 'attachment-name text-truncate', file.name);
    const size = element('span', 'attachment-size small text-body-secondary', formatSize(file.size));
    link.append(fileIcon(), name, element('span', 'visually-hidden', ', '), size);
    return link;
}

// The full-size image, in a dialog made the first time
class ImageViewer {
    constructor() {
        this.opener = null;
        this.modal = null;
    }

    make() {
        const root = element('div', 'modal fade image-viewer');
        root.id = 'image-viewer';
        root.tabIndex = -1;
        root.setAttribute('aria-labelledby', 'image-viewer-title');
        root.setAttribute('aria-hidden', 'true');
        const dialog = element('div', 'modal-dialog modal-xl modal-dialog-centered');
        const content = element('div', 'modal-content');
        const header = element('div', 'modal-header gap-2');
        this.title = element('h2', 'modal-title h6 text-truncate me-auto');
        this.title.id = 'image-viewer-title';
        this.download = element('a', 'btn btn-sm btn-outline-secondary image-viewer-download', 'Download');
        const close = element('button', 'btn-close ms-0');
        close.type = 'button';
        close.dataset.bsDismiss = 'modal';
        close.setAttribute('aria-label', 'Close');
        header.append(this.title, this.download, close);
        const body = element('div', 'modal-body image-viewer-body');
        this.image = element('img', 'image-viewer-img');
        body.append(this.image);
        content.append(header, body);
        dialog.append(content);
        root.append(dialog);
        document.body.append(root);
        root.addEventListener('hidden.bs.modal', () => {
            this.image.removeAttribute('src');
            if (this.opener?.isConnected)
                this.opener.focus();
        });
        this.root = root;
        this.modal = window.bootstrap.Modal.getOrCreateInstance(root);
    }

    open(file, opener) {
        if (!window.bootstrap) {
            window.open(fileUrl(file), '_blank', 'noopener');
            return;
        }
        if (!this.modal)
            this.make();
        this.opener = opener;
        this.title.textContent = file.name;
        this.image.alt = file.name;
        this.image.src = fileUrl(file);
        this.download.href = fileUrl(file);
        this.download.download = file.name;
        this.download.setAttribute('aria-label', `Download ${file.name}`);
        this.modal.show();
    }
}

const viewer = new ImageViewer();

// --- the composer's attachment -----------------------------------------------------

const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
let guarded = false;

// A file dropped anywhere else on the page (or where one may not write) is
// refused, rather than opened by the browser in place of the app
function guardPage() {
    if (guarded)
        return;
    guarded = true;
    for (const type of ['dragover', 'drop'])
        document.addEventListener(type, (event) => {
            if (!carriesFiles(event) || event.defaultPrevented)
                return;
            event.preventDefault();
            event.dataTransfer.dropEffect = 'none';
        });
}

export class Attachments {
    // view: the ChatView (its composer gets the paper clip, its timeline takes
    // drops); token(): the session's token; writable(): whether one may write
    // in the chat on screen
    constructor(view, { token }) {
        this.view = view;
        this.token = token;
        this.states = new Map();        // chat key -> { file, name, status, loaded, total, error, uploaded, abort, preview }
        view.attachments = this;
        this.makeControls();
        this.wire();
    }

    get state() {
        return this.view.key === null ? null : this.states.get(this.view.key) ?? null;
    }

    // --- what ChatView asks ----------------------------------------------------------

    // An upload on its way in the chat on screen: Send waits
    get busy() {
        return this.state?.status === 'uploading';
    }

    // Why the message cannot go now, or null; ready: a file goes with it
    problem() {
        const state = this.state;
        if (state?.status === 'uploading')
            return 'Wait for the upload to finish, or cancel it.';
        if (state?.status === 'failed')
            return state.error?.retry ? 'The file was not uploaded: try again, or remove it to send without it.'
                : 'The file was not uploaded: remove it to send without it.';
        return null;
    }

    get ready() {
        return this.state?.status === 'ready';
    }

    // The fields of the message being sent: the file, which then leaves the composer
    sendFields() {
        const state = this.state;
        if (state?.status !== 'ready')
            return {};
        this.states.delete(this.view.key);
        this.render();
        return { file: state.uploaded };
    }

    // A message of the timeline, or of the outbox (whose file is uploaded
    // already): its file under its text (none once deleted)
    message(item, entry, body, text) {
        const file = validFile(entry.file);
        if (!file || entry.deleted)
            return;
        item.classList.add('has-file');
        text.after(fileNode(file, { open: (shown, opener) => viewer.open(shown, opener) }));
    }

    // Signed out: uploads stop and nothing stays
    forget() {
        for (const state of this.states.values())
            state.abort?.();
        this.states.clear();
        this.render();
    }

    // --- attaching ------------------------------------------------------------------

    // files: the Files chosen, dropped or pasted; the first is attached to
    // the message being written in the chat on screen (replacing one there)
    attach(files) {
        const list = [...files].filter((file) => file instanceof Blob);
        if (list.length === 0 || !this.view.writable || this.view.key === null)
            return;
        const file = list[0];
        const key = this.view.key;
        this.states.get(key)?.abort?.();
        const state = {
            file, name: uploadName(file.name || 'pasted-image'), status: 'uploading', loaded: 0, total: file.size,
            error: null, uploaded: null, abort: null, preview: null,
            note: list.length > 1 ? `One file per message: the first of the ${list.length} is attached.` : null,
        };
        this.states.set(key, state);
        if (INLINE_TYPES.has(file.type) && file.size <= PREVIEW_MAX_BYTES)
            this.readPreview(state);
        this.start(key, state);
    }

    // A small picture of the image over the composer (the CSP allows data:
    // images, not blob: ones)
    readPreview(state) {
        const reader = new FileReader();
        reader.addEventListener('load', () => {
            state.preview = typeof reader.result === 'string' ? reader.result : null;
            if (this.state === state)
                this.render();
        });
        reader.readAsDataURL(state.file);
    }

    start(key, state) {
        Object.assign(state, { status: 'uploading', loaded: 0, error: null });
        const upload = uploadFile(state.file, {
            token: this.token() ?? '', name: state.name,
            progress: (loaded, total) => {
                state.loaded = loaded;
                state.total = total || state.total;
                if (this.state === state)
                    this.renderProgress(state);
            },
        });
        state.abort = upload.abort;
        this.render();
        this.view.renderComposer();     // Send waits
        upload.done.then((uploaded) => {
            Object.assign(state, { status: 'ready', uploaded, abort: null, loaded: state.total });
            if (this.state === state)
                this.view.el.error.textContent = '';    // "Wait for the upload…" no longer holds
            this.settled(key, state, `${uploaded.name} is uploaded: press Send to share it.`);
        }, (error) => {
            if (error.code === 'aborted')
                return;
            Object.assign(state, { status: 'failed', error, abort: null });
            this.settled(key, state, error.message);
        });
    }

    settled(key, state, sentence) {
        if (this.states.get(key) !== state)
            return;
        if (this.state === state) {
            this.render();
            this.view.announce(sentence);
        }
        this.view.renderComposer();
    }

    remove() {
        const key = this.view.key;
        const state = this.states.get(key);
        if (!state)
            return;
        state.abort?.();
        this.states.delete(key);
        this.render();
        this.view.renderComposer();
        this.view.el.input.focus();
    }

    // --- the composer's controls ---------------------------------------------------------

    makeControls() {
        const { form, input } = this.view.el;
        const row = input.parentElement;
        this.button = element('button', 'btn btn-outline-secondary attach-button');
        this.button.type = 'button';
        this.button.id = `${form.id}-attach`;
        this.button.title = 'Attach a file (or drop it on the messages, or paste an image)';
        this.button.setAttribute('aria-label', 'Attach a file');
        this.button.append(clipIcon());
        this.picker = element('input', 'attach-input');
        this.picker.type = 'file';
        this.picker.id = `${form.id}-file`;
        this.picker.hidden = true;
        this.picker.tabIndex = -1;
        this.picker.setAttribute('aria-hidden', 'true');
        row.insertBefore(this.button, input);
        row.append(this.picker);
        this.tray = element('div', 'upload-tray');
        this.tray.id = `${form.id}-upload`;
        this.tray.hidden = true;
        form.insertBefore(this.tray, row);
        this.dropHint = element('div', 'drop-hint', 'Drop the file to attach it');
        this.dropHint.setAttribute('aria-hidden', 'true');
        this.dropHint.hidden = true;
        this.view.el.box.parentElement.append(this.dropHint);
    }

    // The composer was drawn again (one may write here or not)
    composerRendered() {
        this.button.disabled = !this.view.writable;
    }

    // The tray over the composer: the file, its progress, what went wrong
    render() {
        // The tray takes height from the timeline: one read to the end stays there
        const atEnd = this.view.key !== null && this.view.nearBottom;
        this.renderTray();
        if (atEnd)
            this.view.el.box.scrollTop = this.view.el.box.scrollHeight;
    }

    renderTray() {
        const state = this.state;
        const tray = this.tray;
        this.composerRendered();
        tray.hidden = !state;
        if (!state) {
            tray.replaceChildren();
            return;
        }
        tray.dataset.status = state.status;
        const thumb = element('div', 'upload-thumb');
        if (state.preview) {
            const image = element('img');
            image.src = state.preview;
            image.alt = '';
            thumb.append(image);
        } else {
            thumb.append(fileIcon());
        }
        const info = element('div', 'upload-info');
        info.append(element('div', 'upload-name text-truncate', state.name));
        const detail = element('div', 'upload-detail small');
        info.append(detail);
        if (state.status === 'uploading') {
            const bar = element('div', 'progress upload-progress');
            bar.setAttribute('role', 'progressbar');
            bar.setAttribute('aria-label', `Upload of ${state.name}`);
            bar.setAttribute('aria-valuemin', '0');
            bar.setAttribute('aria-valuemax', '100');
            bar.append(element('div', 'progress-bar'));
            info.append(bar);
        }
        const actions = element('div', 'upload-actions');
        if (state.status === 'failed' && state.error?.retry) {
            const retry = element('button', 'btn btn-sm btn-outline-primary upload-retry', 'Try again');
            retry.type = 'button';
            retry.addEventListener('click', () => this.start(this.view.key, state));
            actions.append(retry);
        }
        const cancel = element('button', 'btn btn-sm btn-outline-secondary upload-cancel',
            state.status === 'uploading' ? 'Cancel' : 'Remove');
        cancel.type = 'button';
        cancel.setAttribute('aria-label', `${state.status === 'uploading' ? 'Cancel the upload of' : 'Remove'} ${state.name}`);
        cancel.addEventListener('click', () => this.remove());
        actions.append(cancel);
        tray.replaceChildren(thumb, info, actions);
        this.renderProgress(state);
    }

    // Only the numbers: called for every progress event
    renderProgress(state) {
        const detail = this.tray.querySelector('.upload-detail');
        if (!detail)
            return;
        const size = formatSize(state.total);
        detail.classList.toggle('text-danger', state.status === 'failed');
        detail.classList.toggle('text-body-secondary', state.status !== 'failed');
        if (state.status === 'uploading') {
            const percent = state.total > 0 ? Math.min(100, Math.floor(state.loaded * 100 / state.total)) : 0;
            detail.textContent = `${size} · Uploading… ${percent} %`;
            const bar = this.tray.querySelector('.upload-progress');
            bar?.setAttribute('aria-valuenow', String(percent));
            const fill = bar?.querySelector('.progress-bar');
            if (fill)
                fill.style.width = `${percent}%`;
        } else if (state.status === 'ready') {
            detail.textContent = `${size} · Ready to send${state.note ? `. ${state.note}` : ''}`;
        } else {
            detail.textContent = state.error?.message ?? 'The upload failed.';
        }
    }

    // --- the paper clip, dropping, pasting -----------------------------------------------

    wire() {
        const { form, input, box } = this.view.el;
        this.button.addEventListener('click', () => this.picker.click());
        this.picker.addEventListener('change', () => {
            this.attach(this.picker.files ?? []);
            this.picker.value = '';
            input.focus();
        });
        // The chat on screen changed (or its right to write): its own attachment shows
        form.addEventListener('parley:chat', () => this.render());
        input.addEventListener('paste', (event) => {
            const data = event.clipboardData;
            const files = [...(data?.files ?? [])];
            // Text copied with a picture (a document's) pastes as text
            if (files.length === 0 || data.types.includes('text/plain') || !this.view.writable)
                return;
            event.preventDefault();
            this.attach(files);
        });
        this.wireDrop(box.parentElement);
    }

    wireDrop(area) {
        guardPage();
        let depth = 0;          // dragenter and dragleave come for every child crossed
        const show = (on) => {
            this.dropHint.hidden = !on;
            area.classList.toggle('dropping', on);
        };
        area.addEventListener('dragenter', (event) => {
            if (!carriesFiles(event) || !this.view.writable)
                return;
            event.preventDefault();
            depth += 1;
            show(true);
        });
        area.addEventListener('dragover', (event) => {
            if (!carriesFiles(event) || !this.view.writable)
                return;
            event.preventDefault();
            event.dataTransfer.dropEffect = 'copy';
        });
        area.addEventListener('dragleave', () => {
            depth = Math.max(0, depth - 1);
            if (depth === 0)
                show(false);
        });
        area.addEventListener('drop', (event) => {
            depth = 0;
            show(false);
            if (!carriesFiles(event) || !this.view.writable)
                return;
            event.preventDefault();
            this.attach(event.dataTransfer.files);
            this.view.el.input.focus();
        });
    }
}
