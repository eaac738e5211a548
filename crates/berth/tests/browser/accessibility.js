// The accessibility check run in each page by accessibility.rs (as a WebDriver script, so
// the body of a function): names of form fields, images, links and buttons; one h1; the
// document's language; unique ids and references that resolve; the contrast of every
// visible text against what is behind it; and every resource from this origin.
const problems = [];
const squash = (text) => (text || '').replace(/\s+/g, ' ').trim();
const describe = (el) => {
  let what = el.tagName.toLowerCase();
  if (el.id) what += '#' + el.id;
  if (el.getAttribute('name')) what += '[name=' + el.getAttribute('name') + ']';
  if (el.className && typeof el.className === 'string') what += '.' + el.className.trim().split(/\s+/).join('.');
  const text = squash(el.textContent).slice(0, 40);
  return text ? `${what} "${text}"` : what;
};
const ariaLabel = (el) => squash(el.getAttribute('aria-label'));
const labelledBy = (el) => squash((el.getAttribute('aria-labelledby') || '').split(/\s+/)
  .map((id) => document.getElementById(id)).filter(Boolean).map((e) => e.textContent).join(' '));

// Every form field has a name: a label (for= or wrapping), aria-label or aria-labelledby.
for (const field of document.querySelectorAll('input, select, textarea')) {
  if (field.type === 'hidden') continue;
  const labels = squash(Array.from(field.labels || [], (label) => label.textContent).join(' '));
  if (!labels && !ariaLabel(field) && !labelledBy(field)) problems.push('form field without a label: ' + describe(field));
}
// Every image says what it shows (alt="" for decoration).
for (const img of document.querySelectorAll('img')) {
  if (!img.hasAttribute('alt')) problems.push('image without alt: ' + img.getAttribute('src'));
}
// Every link and button has a name.
const imageNames = (el) => squash(Array.from(el.querySelectorAll('img[alt]'), (img) => img.alt).join(' '));
for (const el of document.querySelectorAll('a[href], button, summary')) {
  if (!squash(el.textContent) && !ariaLabel(el) && !labelledBy(el) && !imageNames(el)) {
    problems.push('link or button without a name: ' + el.outerHTML.slice(0, 120));
  }
}
// One h1, a language.
const h1s = document.querySelectorAll('h1');
if (h1s.length !== 1) problems.push(`${h1s.length} h1 elements: ${Array.from(h1s, (h) => squash(h.textContent)).join(' | ')}`);
if (!squash(document.documentElement.getAttribute('lang'))) problems.push('no lang on <html>');
// Ids are unique, and what points to an id finds it.
const ids = new Map();
for (const el of document.querySelectorAll('[id]')) ids.set(el.id, (ids.get(el.id) || 0) + 1);
for (const [id, n] of ids) if (n > 1) problems.push(`id "${id}" is used ${n} times`);
for (const el of document.querySelectorAll('label[for]')) {
  if (!document.getElementById(el.htmlFor)) problems.push(`label for missing id "${el.htmlFor}"`);
}
for (const attribute of ['aria-labelledby', 'aria-describedby', 'aria-controls']) {
  for (const el of document.querySelectorAll(`[${attribute}]`)) {
    for (const id of el.getAttribute(attribute).split(/\s+/).filter(Boolean)) {
      if (!document.getElementById(id)) problems.push(`${attribute} of ${describe(el)} names missing id "${id}"`);
    }
  }
}

// Contrast (WCAG 2): the text colour against the background behind it, blending
// translucent layers up to the canvas (white).
const parse = (color) => {
  const match = /rgba?\(([^)]+)\)/.exec(color || '');
  if (!match) return null;
  const [r, g, b, a] = match[1].split(/[\s,/]+/).filter(Boolean).map(Number);
  return { r, g, b, a: Number.isNaN(a) || a === undefined ? 1 : a };
};
const over = (top, bottom) => ({
  r: top.r * top.a + bottom.r * (1 - top.a),
  g: top.g * top.a + bottom.g * (1 - top.a),
  b: top.b * top.a + bottom.b * (1 - top.a),
  a: 1,
});
const backdrop = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const color = parse(getComputedStyle(e).backgroundColor);
    if (color && color.a > 0) {
      layers.push(color);
      if (color.a >= 1) break;
    }
  }
  return layers.reverse().reduce((below, layer) => over(layer, below), { r: 255, g: 255, b: 255, a: 1 });
};
const luminance = ({ r, g, b }) => {
  const channel = (v) => {
    const s = v / 255;
    return s <= 0.04045 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
};
const contrast = (a, b) => {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
};
const shows = (el) => {
  const box = el.getBoundingClientRect();
  const style = getComputedStyle(el);
  // Visually hidden text (1px, clipped) is for screen readers: no colour to judge.
  return box.width > 1 && box.height > 1 && style.visibility !== 'hidden' && Number(style.opacity) > 0;
};
const css = (c) => `rgb(${Math.round(c.r)}, ${Math.round(c.g)}, ${Math.round(c.b)})`;
const lowest = { text: 21, link: 21 };
const seen = new Set();
const texts = Array.from(document.querySelectorAll('body *')).filter((el) =>
  Array.from(el.childNodes).some((node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim())
  || el.matches('input:not([type=hidden]):not([type=checkbox]):not([type=radio]), select, textarea'));
for (const el of texts) {
  if (el.matches('option, script, style, title') || el.disabled || !shows(el)) continue;
  const background = backdrop(el);
  const foreground = parse(getComputedStyle(el).color);
  if (!foreground) continue;
  const ratio = contrast(over(foreground, background), background);
  const kind = el.closest('a[href]') ? 'link' : 'text';
  lowest[kind] = Math.min(lowest[kind], ratio);
  if (ratio < 4.5) {
    const key = `${describe(el).split(' ')[0]} ${css(foreground)} ${css(background)}`;
    if (!seen.has(key)) {
      seen.add(key);
      problems.push(`contrast ${ratio.toFixed(2)}:1 of ${describe(el)}: ${css(foreground)} on ${css(background)}`);
    }
  }
}

// Nothing comes from elsewhere: no element points off-site, and nothing was loaded from
// another origin.
const external = new Set();
const resources = new Set();
for (const el of document.querySelectorAll('link[href], script[src], img[src], iframe, object, embed, source[src], video[src], audio[src]')) {
  const raw = el.getAttribute('href') || el.getAttribute('src') || el.getAttribute('data') || '';
  const url = new URL(raw, location.href);
  if (url.protocol !== 'data:' && url.origin !== location.origin) external.add(url.href);
  else if (raw && url.protocol !== 'data:') resources.add(url.href);
}
for (const entry of performance.getEntriesByType('resource')) {
  const url = new URL(entry.name);
  if (url.protocol !== 'data:' && url.origin !== location.origin) external.add(url.href);
}
return { problems, lowest, external: Array.from(external), resources: Array.from(resources) };
