// Text below WCAG AA contrast on the page: [text, ratio, colour, background] of each.
function lum(c) {
  var v = c.map(function (x) { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
  return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
}
function rgba(s) { var m = s.match(/[\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; }
function bg(el) {
  while (el) {
    var c = rgba(getComputedStyle(el).backgroundColor);
    if (c[3] > 0.5) { return c; }
    el = el.parentElement;
  }
  return [255, 255, 255, 1];
}
function opacity(el) { var o = 1; while (el) { o *= Number(getComputedStyle(el).opacity); el = el.parentElement; } return o; }
var bad = [];
var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
var node;
while ((node = walker.nextNode())) {
  if (!node.textContent.trim()) { continue; }
  var el = node.parentElement;
  if (!el || el.closest("svg") || el.closest("noscript")) { continue; }
  var r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) { continue; }
  var st = getComputedStyle(el);
  if (st.visibility === "hidden") { continue; }
  var fg = rgba(st.color), back = bg(el), a = fg[3] * opacity(el);
  var mixed = [0, 1, 2].map(function (i) { return fg[i] * a + back[i] * (1 - a); });
  var l1 = lum(mixed), l2 = lum(back);
  var ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
  var size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
  var need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
  if (ratio < need) { bad.push([node.textContent.trim().slice(0, 40), ratio.toFixed(2), st.color, back.join(",")]); }
}
return bad;
