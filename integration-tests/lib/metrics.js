// Prometheus' text exposition format (0.0.4), read strictly: what the
// metrics tests and anything else that scrapes the gateway check pages with.

// Parses a whole page. Throws on the first line that is not a comment or a
// sample, on a sample whose family has no HELP and TYPE before it, on a
// family whose samples are not together, and on a histogram whose buckets
// are not cumulative or whose +Inf bucket is not its _count. Returns a Map
// name -> { help, type, samples: [{ name, labels, value }] }.
export function parseExposition(text) {
    if (!text.endsWith('\n'))
        throw new Error('the page does not end with a newline');
    const families = new Map();
    let current = null;
    const lines = text.slice(0, -1).split('\n');
    lines.forEach((line, index) => {
        const where = `line ${index + 1} '${line}'`;
        const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
        if (meta) {
            const [, what, name, rest] = meta;
            const family = families.get(name) ?? { name, samples: [] };
            families.set(name, family);
            const key = what.toLowerCase();
            if (family[key] !== undefined)
                throw new Error(`${where}: a second ${what} for ${name}`);
            if (family.samples.length)
                throw new Error(`${where}: ${what} after ${name}'s samples`);
            if (what === 'TYPE' && !/^(counter|gauge|histogram|summary|untyped)$/.test(rest))
                throw new Error(`${where}: no such type`);
            family[key] = rest;
            current = family;
            return;
        }
        if (line.startsWith('#'))
            return;
        const sample = parseSample(line, where);
        const family = familyOf(families, sample.name);
        if (!family || family.help === undefined || family.type === undefined)
            throw new Error(`${where}: no HELP and TYPE before this sample`);
        if (family !== current)
            throw new Error(`${where}: ${family.name}'s samples are not together`);
        family.samples.push(sample);
    });
    for (const family of families.values()) {
        if (family.help === undefined || family.type === undefined)
            throw new Error(`${family.name} lacks HELP or TYPE`);
        if (family.type === 'histogram')
            checkHistogram(family);
    }
    return families;
}

function parseSample(line, where) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!match)
        throw new Error(`${where}: not a sample`);
    const [, name, labelText, valueText] = match;
    const labels = {};
    if (labelText !== undefined && labelText !== '') {
        const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
        let at = 0;
        while (at < labelText.length) {
            label.lastIndex = at;
            const one = label.exec(labelText);
            if (!one)
                throw new Error(`${where}: bad labels at '${labelText.slice(at)}'`);
            if (one[1] in labels)
                throw new Error(`${where}: label ${one[1]} twice`);
            labels[one[1]] = one[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
            at = label.lastIndex;
            if (one[3] === ',' && at === labelText.length)
                throw new Error(`${where}: a trailing comma`);
        }
    }
    if (!/^([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]Inf|NaN)$/.test(valueText))
        throw new Error(`${where}: '${valueText}' is not a value`);
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    return { name, labels, value };
}

function familyOf(families, name) {
    if (families.has(name))
        return families.get(name);
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const family = families.get(base);
    return family && (family.type === 'histogram' || family.type === 'summary') ? family : undefined;
}

function checkHistogram(family) {
    const series = new Map();
    for (const sample of family.samples) {
        const { le, ...rest } = sample.labels;
        const key = JSON.stringify(rest);
        const one = series.get(key) ?? { buckets: [], sum: undefined, count: undefined };
        series.set(key, one);
        if (sample.name === `${family.name}_bucket`) {
            if (le === undefined)
                throw new Error(`${family.name}: a bucket without le`);
            one.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), value: sample.value });
        } else if (sample.name === `${family.name}_sum`) {
            one.sum = sample.value;
        } else if (sample.name === `${family.name}_count`) {
            one.count = sample.value;
        } else {
            throw new Error(`${family.name}: a sample named ${sample.name}`);
        }
    }
    for (const [key, one] of series) {
        const where = `${family.name}${key}`;
        if (one.sum === undefined || one.count === undefined)
            throw new Error(`${where}: no _sum or _count`);
        for (let index = 1; index < one.buckets.length; index++) {
            if (!(one.buckets[index].le > one.buckets[index - 1].le))
                throw new Error(`${where}: bucket bounds not increasing`);
            if (one.buckets[index].value < one.buckets[index - 1].value)
                throw new Error(`${where}: buckets not cumulative`);
        }
        const last = one.buckets[one.buckets.length - 1];
        if (!last || last.le !== Infinity)
            throw new Error(`${where}: no +Inf bucket`);
        if (last.value !== one.count)
            throw new Error(`${where}: +Inf bucket ${last.value} is not _count ${one.count}`);
    }
}

// The value of the sample name{labels} (labels: those given must match, and
// no others be present), or undefined
export function sampleValue(families, name, labels = {}) {
    const family = familyOf(families, name);
    const sample = family?.samples.find((each) => each.name === name
        && Object.keys(each.labels).length === Object.keys(labels).length
        && Object.entries(labels).every(([key, value]) => each.labels[key] === value));
    return sample?.value;
}
