// The rooms' dialogs: create a room (checked here first, then by the server),
// delete a room (owner only) and leave a private room, each a Bootstrap modal.

import { characters } from './chatview.js';

// The server's rules (PROTOCOL.md "Names, limits, times"), checked here first
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const DESCRIPTION_MAX = 500;
export const PARTICIPANTS_MIN = 2;
export const PARTICIPANTS_MAX = 10000;
export const PARTICIPANTS_DEFAULT = 50;

const $ = (id) => document.getElementById(id);
const modal = (id) => window.bootstrap.Modal.getOrCreateInstance($(id));

export function roomNameProblem(name) {
    if (name.length === 0)
        return 'Enter a name for the room.';
    if (!ROOM_NAME_PATTERN.test(name))
        return 'A room name has 1 to 64 characters: letters, digits, dashes or underscores.';
    return null;
}

// The start of a room name, as room.directory takes it (0 to 64 of the
// characters a name has; "" asks for every public room)
export function roomPrefixProblem(prefix) {
    if (prefix.length === 0 || ROOM_NAME_PATTERN.test(prefix))
        return null;
    return 'Room names have only letters, digits, dashes or underscores (at most 64).';
}

export function descriptionProblem(text) {
    const count = characters(text);
    return count > DESCRIPTION_MAX
        ? `A description has at most ${DESCRIPTION_MAX} characters (this one has ${count}).` : null;
}

export function participantsProblem(text) {
    const value = Number(text);
    if (text.trim() === '' || !Number.isInteger(value) || value < PARTICIPANTS_MIN || value > PARTICIPANTS_MAX)
        return `Enter a whole number from ${PARTICIPANTS_MIN} to ${PARTICIPANTS_MAX}.`;
    return null;
}

export function setFieldError(input, text) {
    input.classList.toggle('is-invalid', Boolean(text));
    input.setAttribute('aria-invalid', text ? 'true' : 'false');
    $(`${input.id}-error`).textContent = text ?? '';
}

// "12 / 500" under a description, red past the limit
export function renderDescriptionCount(textarea, counter) {
    const count = characters(textarea.value);
    counter.textContent = `${count} / ${DESCRIPTION_MAX}`;
    counter.classList.toggle('text-danger', count > DESCRIPTION_MAX);
}

export class CreateRoomDialog {
    // created(room): the server made the room; the dialog is closing
    constructor(client, { created }) {
        this.client = client;
        this.created = created;
        this.prefill = '';
        this.focusAfter = null;         // where the focus goes when the dialog has closed
        this.fields = { name: $('room-name'), description: $('room-description'), max: $('room-max') };
        this.wire();
    }

    // Opens the dialog with a name already filled in ("Create it?")
    open(name = '') {
        this.prefill = name;
        modal('create-room-modal').show();
    }

    wire() {
        const dialog = $('create-room-modal');
        const { fields } = this;
        dialog.addEventListener('show.bs.modal', () => {
            $('create-room-form').reset();
            fields.name.value = this.prefill;
            this.prefill = '';
            fields.max.value = String(PARTICIPANTS_DEFAULT);
            for (const input of Object.values(fields))
                setFieldError(input, null);
            this.setError(null);
            this.renderCount();
        });
        dialog.addEventListener('shown.bs.modal', () => fields.name.focus());
        // Bootstrap gives the focus back to the button that opened the dialog; a
        // room just created takes it instead
        dialog.addEventListener('hidden.bs.modal', () => {
            const target = this.focusAfter;
            this.focusAfter = null;
            if (target)
                setTimeout(() => target.focus(), 0);
        });
        fields.description.addEventListener('input', () => {
            this.renderCount();
            if (fields.description.classList.contains('is-invalid'))
                setFieldError(fields.description, descriptionProblem(fields.description.value));
        });
        for (const input of [fields.name, fields.max]) {
            input.addEventListener('input', () => {
                if (input.classList.contains('is-invalid'))
                    setFieldError(input, null);
                this.setError(null);
            });
        }
        $('create-room-form').addEventListener('submit', (event) => {
            event.preventDefault();
            this.submit();
        });
    }

    renderCount() {
        renderDescriptionCount($('room-description'), $('room-description-count'));
    }

    setError(text) {
        $('create-room-error').textContent = text ?? '';
        $('create-room-error').hidden = !text;
    }

    async submit() {
        const { fields } = this;
        const name = fields.name.value.trim();
        const description = fields.description.value;
        const problems = [
            [fields.name, roomNameProblem(name)],
            [fields.description, descriptionProblem(description)],
            [fields.max, participantsProblem(fields.max.value)],
        ];
        let first = null;
        for (const [input, problem] of problems) {
            setFieldError(input, problem);
            first ??= problem ? input : null;
        }
        if (first) {
            first.focus();
            return;
        }
        const submit = $('create-room-submit');
        submit.disabled = true;
        submit.textContent = 'Creating…';
        this.setError(null);
        try {
            const reply = await this.client.request('room.create', {
                room: name,
                description,
                private: $('room-private').checked,
                max_participants: Number(fields.max.value),
            });
            this.focusAfter = $('composer-text');
            modal('create-room-modal').hide();
            await this.created({ ...reply.room, joined: true });
        } catch (error) {
            if (error.code === 'invalid_room' || error.code === 'room_exists') {
                setFieldError(fields.name, error.message);
                fields.name.focus();
                fields.name.select();
            } else {
                this.setError(error.message || 'The room could not be created; try again.');
            }
        } finally {
            submit.disabled = false;
            submit.textContent = 'Create room';
        }
    }
}

// A question with a dangerous answer (delete a room, leave a private one):
// resolves, once the dialog has closed (so that the focus can move), true when
// confirmed and the action succeeded, false when cancelled. action() runs on
// confirming; its error stays shown in the dialog. There is one dialog on the
// page: every `new ConfirmDialog()` is the same one.
export class ConfirmDialog {
    static shared = null;

    constructor() {
        if (ConfirmDialog.shared)
            return ConfirmDialog.shared;
        ConfirmDialog.shared = this;
        this.action = null;
        this.resolve = null;
        this.done = false;
        $('confirm-ok').addEventListener('click', () => this.confirm());
        $('confirm-modal').addEventListener('hidden.bs.modal', () => {
            this.resolve?.(this.done);
            this.resolve = null;
        });
    }

    // option: a checkbox under the question ({ label, ok: the button's text
    // while it is ticked }; removing a member: "Also ban"), whose state
    // action(checked) is given
    ask({ title, text, ok, action, opener = null, option = null }) {
        this.resolve?.(false);
        this.done = false;
        $('confirm-title').textContent = title;
        $('confirm-text').textContent = text;
        $('confirm-ok').textContent = ok;
        $('confirm-error').hidden = true;
        $('confirm-option').hidden = !option;
        $('confirm-option-check').checked = false;
        $('confirm-option-label').textContent = option?.label ?? '';
        $('confirm-option-check').onchange = () => {
            $('confirm-ok').textContent = $('confirm-option-check').checked ? option.ok : ok;
        };
        this.action = action;
        modal('confirm-modal').show(opener);
        return new Promise((resolve) => { this.resolve = resolve; });
    }

    async confirm() {
        const button = $('confirm-ok');
        button.disabled = true;
        try {
            await this.action($('confirm-option-check').checked);
            this.done = true;
            modal('confirm-modal').hide();
        } catch (error) {
            $('confirm-error').textContent = error.message;
            $('confirm-error').hidden = false;
        } finally {
            button.disabled = false;
        }
    }
}
