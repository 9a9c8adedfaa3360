// Light or dark, before the page is drawn (a classic script in <head>, since
// the CSP forbids inline script): the choice kept in localStorage, else the
// system's prefers-color-scheme, followed live. The header's toggle sets it.
(function () {
    'use strict';
    var KEY = 'parley.theme';
    var media = window.matchMedia('(prefers-color-scheme: dark)');

    function stored() {
        try {
            var value = localStorage.getItem(KEY);
            return value === 'dark' || value === 'light' ? value : null;
        } catch (error) {
            return null;
        }
    }

    function current() {
        return stored() || (media.matches ? 'dark' : 'light');
    }

    function apply() {
        var theme = current();
        document.documentElement.setAttribute('data-bs-theme', theme);
        var button = document.getElementById('theme-toggle');
        if (button) {
            button.setAttribute('aria-pressed', String(theme === 'dark'));
            button.title = theme === 'dark' ? 'Dark mode is on' : 'Dark mode is off';
        }
    }

    apply();
    media.addEventListener('change', apply);
    document.addEventListener('DOMContentLoaded', function () {
        apply();
        document.getElementById('theme-toggle').addEventListener('click', function () {
            try {
                localStorage.setItem(KEY, current() === 'dark' ? 'light' : 'dark');
            } catch (error) {
                // storage disabled: the choice lasts as long as the page
                document.documentElement.setAttribute('data-bs-theme', current() === 'dark' ? 'light' : 'dark');
                return;
            }
            apply();
        });
    });
    window.addEventListener('storage', function (event) {
        if (event.key === KEY)
            apply();
    });
}());
