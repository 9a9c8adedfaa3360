// A Bootstrap toast in #toasts: a sentence, and optionally one action button
// (an invitation's Join). Hides by itself unless it has an action. Returns
// { hide }, for a toast that the page makes moot (an invitation to a room
// joined some other way).

import { element } from './chatview.js';

export function toast(text, { action = null, onAction = null } = {}) {
    const box = element('div', 'toast align-items-center');
    box.setAttribute('role', 'status');
    box.setAttribute('aria-atomic', 'true');
    const body = element('div', 'toast-body d-flex align-items-center gap-2');
    body.append(element('span', 'flex-grow-1 toast-text', text));
    if (action) {
        const button = element('button', 'btn btn-sm btn-primary toast-action', action);
        button.type = 'button';
        button.addEventListener('click', () => {
            onAction();
            window.bootstrap?.Toast.getOrCreateInstance(box).hide();
        });
        body.append(button);
    }
    const close = element('button', 'btn-close');
    close.type = 'button';
    close.setAttribute('aria-label', 'Dismiss');
    close.setAttribute('data-bs-dismiss', 'toast');
    body.append(close);
    box.append(body);
    document.getElementById('toasts').append(box);
    box.addEventListener('hidden.bs.toast', () => box.remove());
    if (window.bootstrap)
        window.bootstrap.Toast.getOrCreateInstance(box, { autohide: !action, delay: 8000 }).show();
    else
        box.classList.add('show');
    return {
        hide: () => {
            if (window.bootstrap)
                window.bootstrap.Toast.getOrCreateInstance(box).hide();
            else
                box.remove();
        },
    };
}
