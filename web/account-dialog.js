// The account's dialog: change one's password (auth.password, PROTOCOL.md
// "Accounts (1.1)"), opened from the user menu. The rules are checked here
// first, then by the server, whose errors go to the field they are about.
// On success the session stays signed in with the fresh token the server
// answered, which the page keeps as its token (changed).

import { toast } from './toast.js';

// The server's rules (PROTOCOL.md "Names, limits, times"), checked here first
// so that a person learns of a typo without a round trip
export const PASSWORD_MIN_BYTES = 8;
export const PASSWORD_MAX_BYTES = 1024;

const $ = (id) => document.getElementById(id);
const modal = (id) => window.bootstrap.Modal.getOrCreateInstance($(id));

export function passwordProblem(password) {
    const bytes = new TextEncoder().encode(password).length;
    if (bytes === 0)
        return 'Enter a password.';
    if (bytes < PASSWORD_MIN_BYTES)
        return `A password has at least ${PASSWORD_MIN_BYTES} characters.`;
    if (bytes > PASSWORD_MAX_BYTES)
        return `A password has at most ${PASSWORD_MAX_BYTES} bytes.`;
    return null;
}

function setFieldError(input, text) {
    input.classList.toggle('is-invalid', Boolean(text));
    input.setAttribute('aria-invalid', text ? 'true' : 'false');
    $(`${input.id}-error`).textContent = text ?? '';
}

export class PasswordDialog {
    // user(): the signed-in user's name; changed(token): the password is
    // changed and this session's fresh token is token
    constructor(client, { user, changed }) {
        this.client = client;
        this.user = user;
        this.changed = changed;
        this.busy = false;
        this.fields = { current: $('password-current'), next: $('password-new'), repeat: $('password-repeat') };
        this.wire();
    }

    open() {
        modal('password-modal').show();
    }

    wire() {
        const dialog = $('password-modal');
        dialog.addEventListener('show.bs.modal', () => {
            $('password-form').reset();
            // For password managers: whose password this is
            $('password-username').value = this.user() ?? '';
            for (const input of Object.values(this.fields))
                setFieldError(input, null);
            this.setError(null);
        });
        dialog.addEventListener('shown.bs.modal', () => this.fields.current.focus());
        $('password-form').addEventListener('submit', (event) => this.submit(event));
        for (const input of Object.values(this.fields)) {
            input.addEventListener('input', () => {
                if (input.classList.contains('is-invalid'))
                    setFieldError(input, null);
            });
        }
    }

    setError(text) {
        $('password-form-error').textContent = text ?? '';
        $('password-form-error').hidden = !text;
    }

    // The first problem of each field found here, or none
    problems() {
        const { current, next, repeat } = this.fields;
        const found = [];
        if (current.value.length === 0)
            found.push([current, 'Enter your current password.']);
        const nextProblem = passwordProblem(next.value)
            ?? (next.value.toLowerCase() === (this.user() ?? '').toLowerCase()
                ? 'A password must not be the username.' : null);
        if (nextProblem)
            found.push([next, nextProblem]);
        else if (repeat.value !== next.value)
            found.push([repeat, 'The two new passwords differ; type the new one again.']);
        return found;
    }

    async submit(event) {
        event.preventDefault();
        if (this.busy)
            return;
        this.setError(null);
        const problems = this.problems();
        for (const [input, text] of problems)
            setFieldError(input, text);
        if (problems.length) {
            problems[0][0].focus();
            return;
        }
        const { current, next } = this.fields;
        const button = $('password-submit');
        this.busy = true;
        button.disabled = true;
        button.textContent = 'Changing…';
        try {
            const reply = await this.client.request('auth.password',
                { password: current.value, new_password: next.value });
            $('password-form').reset();
            this.changed(reply.token);
            modal('password-modal').hide();
            toast('Your password was changed. Your other sessions were logged out.');
        } catch (error) {
            // Which field a server error is about; the others (rate_limited,
            // unavailable, disconnected) say so above the buttons
            const input = { bad_credentials: current, weak_password: next }[error.code];
            if (input) {
                setFieldError(input, error.message);
                input.focus();
                input.select();
            } else {
                this.setError(error.message || 'Something went wrong; try again.');
            }
        } finally {
            this.busy = false;
            button.disabled = false;
            button.textContent = 'Change password';
        }
    }
}
