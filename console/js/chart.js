// Small inline SVG charts (no library): a line chart over time and a bar chart.

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#ff3b6b", "#37b6ff", "#3ccf7a", "#ffb347", "#b388ff"];

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(title, width, height) {
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  root.append(svg("title", {}, title));
  return root;
}

/**
 * series: [{name, points: [{x: number (ms or index), y: number}]}]. Empty data draws a "no data" note.
 */
export function lineChart(title, series, { width = 600, height = 200, xLabel = (x) => new Date(x).toLocaleTimeString() } = {}) {
  const root = frame(title, width, height);
  const pad = { l: 40, r: 10, t: 22, b: 22 };
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No data yet"));
    return root;
  }
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const y1 = Math.max(1, ...ys);
  const sx = (x) => pad.l + (x1 === x0 ? (width - pad.l - pad.r) / 2 : ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r));
  const sy = (y) => height - pad.b - (y / y1) * (height - pad.t - pad.b);
  root.append(svg("line", { x1: pad.l, y1: sy(0), x2: width - pad.r, y2: sy(0), stroke: "#2a2f3a" }));
  root.append(svg("text", { x: 4, y: sy(y1) + 4 }, String(y1)));
  root.append(svg("text", { x: 4, y: sy(0) }, "0"));
  root.append(svg("text", { x: pad.l, y: height - 4 }, xLabel(x0)));
  root.append(svg("text", { x: width - pad.r, y: height - 4, "text-anchor": "end" }, xLabel(x1)));
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    if (s.points.length === 1) {
      root.append(svg("circle", { cx: sx(s.points[0].x), cy: sy(s.points[0].y), r: 3, fill: color }));
    } else {
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
      root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
    }
    root.append(svg("text", { x: pad.l + 8 + i * 140, y: 14, fill: color, style: `fill:${color}` }, s.name));
  });
  return root;
}

/** entries: [{label, value}] */
export function barChart(title, entries, { width = 600, height = 200 } = {}) {
  const root = frame(title, width, height);
  if (entries.length === 0) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No data yet"));
    return root;
  }
  const pad = { l: 10, r: 10, t: 10, b: 34 };
  const max = Math.max(1, ...entries.map((e) => e.value));
  const slot = (width - pad.l - pad.r) / entries.length;
  entries.forEach((e, i) => {
    const h = (e.value / max) * (height - pad.t - pad.b);
    const x = pad.l + i * slot + slot * 0.15;
    root.append(svg("rect", { x, y: height - pad.b - h, width: slot * 0.7, height: h, fill: COLORS[i % COLORS.length] }));
    root.append(svg("text", { x: x + slot * 0.35, y: height - pad.b - h - 3, "text-anchor": "middle" }, String(e.value)));
    root.append(svg("text", { x: x + slot * 0.35, y: height - 18, "text-anchor": "middle" }, e.label.slice(0, 12)));
  });
  return root;
}
