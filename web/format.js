// Message text to DOM nodes: links (http and https only), `code`, ``` code
// blocks ```, **bold** and *italic* (or _italic_). Built with createElement and
// text nodes only: no HTML is ever parsed from what someone wrote.

const FENCE = /```(?:[A-Za-z0-9_+-]*\n)?([\s\S]*?)```/g;
// One inline token: code, bold, italic (* or _, not inside a word), or a URL
const INLINE = /(`[^`\n]+`)|(\*\*(?=\S)[^\n]*?\S\*\*)|((?<![\w*])\*(?=[^\s*])[^*\n]*?[^\s*]\*(?![\w*]))|((?<!\w)_(?=[^\s_])[^_\n]*?[^\s_]_(?!\w))|(https?:\/\/[^\s<>"]+)/gi;
const TRAILING = /[.,;:!?'"]+$/;

// The anchor for a URL, or null when it is not an http(s) one
export function safeLink(text) {
    let url;
    try {
        url = new URL(text);
    } catch {
        return null;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
        return null;
    const link = document.createElement('a');
    link.href = url.href;
    link.textContent = text;
    link.rel = 'noopener noreferrer';
    link.target = '_blank';
    return link;
}

// A URL ends before trailing punctuation, and before a ")" it did not open
function splitUrl(text) {
    let url = text.replace(TRAILING, '');
    while (url.endsWith(')') && (url.match(/\(/g) ?? []).length < (url.match(/\)/g) ?? []).length)
        url = url.slice(0, -1).replace(TRAILING, '');
    return [url, text.slice(url.length)];
}

function inline(text, depth = 0) {
    const nodes = [];
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
        let [token] = match;
        let rest = '';
        if (match[5])
            [token, rest] = splitUrl(token);
        let node = null;
        if (match[1]) {
            node = document.createElement('code');
            node.textContent = token.slice(1, -1);
        } else if (match[2] && depth < 3) {
            node = document.createElement('strong');
            node.append(...inline(token.slice(2, -2), depth + 1));
        } else if ((match[3] || match[4]) && depth < 3) {
            node = document.createElement('em');
            node.append(...inline(token.slice(1, -1), depth + 1));
        } else if (match[5]) {
            node = safeLink(token);
        }
        if (!node)
            continue;
        if (match.index > last)
            nodes.push(document.createTextNode(text.slice(last, match.index)));
        nodes.push(node);
        if (rest)
            nodes.push(document.createTextNode(rest));
        last = match.index + match[0].length;
    }
    if (last < text.length)
        nodes.push(document.createTextNode(text.slice(last)));
    return nodes;
}

// The nodes that show a message's text
export function formatMessage(value) {
    const text = String(value ?? '');
    const nodes = [];
    let last = 0;
    for (const match of text.matchAll(FENCE)) {
        // The line breaks around a block are the block's own edges
        if (match.index > last)
            nodes.push(...inline(text.slice(last, match.index).replace(/\n$/, '')));
        const pre = document.createElement('pre');
        const code = document.createElement('code');
        code.textContent = match[1].replace(/\n$/, '');
        pre.append(code);
        nodes.push(pre);
        last = match.index + match[0].length;
        if (text[last] === '\n')
            last++;
    }
    if (last < text.length)
        nodes.push(...inline(text.slice(last)));
    return nodes;
}
