'use strict';
// Prints one plain-text table (also valid Markdown), the format every benchmark reports in.
function table(title, header, rows) {
  const cells = [header, ...rows].map((r) => r.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => '| ' + r.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  const out = [`\n### ${title}\n`, line(cells[0]), '| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |', ...cells.slice(1).map(line)];
  console.log(out.join('\n'));
  return out.join('\n');
}

function fmt(n, digits = 0) {
  if (typeof n !== 'number' || !isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

module.exports = { table, fmt };
