// The report's interactive nuclear chart (see lbmm/report/chart.py): no library, no network.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const svg = document.getElementById("chart-svg");
  const tip = document.getElementById("chart-tip");
  const mixSel = document.getElementById("chart-mixer");
  const laySel = document.getElementById("chart-layer");
  const scaleTxt = document.getElementById("chart-scale");
  const NS = "http://www.w3.org/2000/svg";
  const CELL = 6, PAD = 30;
  const n = data.Z.length;
  const maxN = Math.max(...data.N), maxZ = Math.max(...data.Z);
  // an even-even chart draws each nucleus over a 2 x 2 cell, without gaps
  const STEP = data.N.every((v) => v % 2 === 0) && data.Z.every((v) => v % 2 === 0) ? 2 : 1;
  const width = PAD + (maxN + 2) * CELL + 10, height = (maxZ + 2) * CELL + PAD + 10;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);

  const fmt = (v, d = 3) => (v === null || v === undefined ? "–" : v.toFixed(d));
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

  // viridis at 5 stops, and a blue-white-red scale for signed values
  const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const DIVERGE = [[33, 102, 172], [247, 247, 247], [178, 24, 43]];
  function ramp(stops, t) {
    t = Math.min(1, Math.max(0, t));
    const x = t * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
    const c = stops[i].map((a, k) => Math.round(a + f * (stops[i + 1][k] - a)));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  mixSel.innerHTML = data.mixers.map((m, i) => `<option value="${i}">${esc(m.label)}</option>`).join("");

  function layers(mix) {
    const out = [["mean", `${data.observable}: mixture mean (MeV)`],
                 ["width", "width of the 95 % interval (MeV)"],
                 ["resid", "data − mean on measured nuclei (MeV)"]];
    if (mix.p_exist) out.push(["p_exist", `P(${data.observable} > 0)`]);
    if (mix.weights) data.models.forEach((m, k) => out.push([`w${k}`, `weight of ${m}`]));
    return out;
  }

  function values(mix, layer) {
    const v = new Array(n).fill(null);
    for (let i = 0; i < n; i++) {
      if (layer === "mean") v[i] = mix.mean[i];
      else if (layer === "width") v[i] = mix.hi95[i] === null ? null : mix.hi95[i] - mix.lo95[i];
      else if (layer === "resid") v[i] = data.y[i] === null || mix.mean[i] === null ? null : data.y[i] - mix.mean[i];
      else if (layer === "p_exist") v[i] = mix.p_exist[i];
      else v[i] = mix.weights[+layer.slice(1)][i];
    }
    return v;
  }

  const rects = [];
  const g = document.createElementNS(NS, "g");
  for (let i = 0; i < n; i++) {
    const r = document.createElementNS(NS, "rect");
    r.setAttribute("x", PAD + data.N[i] * CELL);
    r.setAttribute("y", (maxZ - data.Z[i] - STEP + 1) * CELL + 4);
    r.setAttribute("width", STEP * CELL - 0.5);
    r.setAttribute("height", STEP * CELL - 0.5);
    r.setAttribute("data-zn", `${data.Z[i]},${data.N[i]}`);
    if (data.split[i]) r.setAttribute("class", `in-${data.split[i]}`);
    r.addEventListener("mouseenter", (ev) => show(i, ev));
    r.addEventListener("mousemove", (ev) => place(ev));
    r.addEventListener("mouseleave", () => { tip.hidden = true; });
    g.appendChild(r);
    rects.push(r);
  }
  svg.appendChild(g);
  const axis = (txt, x, y, rot) => {
    const t = document.createElementNS(NS, "text");
    t.textContent = txt;
    t.setAttribute("x", x);
    t.setAttribute("y", y);
    t.setAttribute("font-size", "11");
    if (rot) t.setAttribute("transform", `rotate(-90 ${x} ${y})`);
    svg.appendChild(t);
  };
  axis("N →", PAD + (maxN * CELL) / 2, height - 8);
  axis("Z →", 14, (maxZ * CELL) / 2 + 20, true);

  function draw() {
    const mix = data.mixers[+mixSel.value];
    const opts = layers(mix);
    const keep = laySel.value;
    laySel.innerHTML = opts.map(([k, t]) => `<option value="${k}">${esc(t)}</option>`).join("");
    if (opts.some(([k]) => k === keep)) laySel.value = keep;
    const layer = laySel.value;
    const v = values(mix, layer);
    const finite = v.filter((x) => x !== null);
    let lo = Math.min(...finite), hi = Math.max(...finite), color;
    if (layer === "resid") {
      const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
      lo = -m; hi = m;
      color = (x) => ramp(DIVERGE, (x - lo) / (hi - lo));
    } else if (layer === "p_exist" || layer.startsWith("w")) {
      lo = 0; hi = 1;
      color = (x) => ramp(VIRIDIS, x);
    } else {
      color = (x) => ramp(VIRIDIS, hi > lo ? (x - lo) / (hi - lo) : 0.5);
    }
    v.forEach((x, i) => rects[i].setAttribute("fill", x === null ? "#e6e6e6" : color(x)));
    scaleTxt.textContent = finite.length ? `colour scale ${fmt(lo)} … ${fmt(hi)}; grey: no value` : "";
  }

  function show(i, ev) {
    const mix = data.mixers[+mixSel.value];
    const rows = [];
    rows.push(`<b>${esc(data.label[i])}</b> · Z = ${data.Z[i]}, N = ${data.N[i]}` +
              (data.split[i] ? ` · ${data.split[i]}` : ""));
    rows.push(`data: ${data.y[i] === null ? "not measured" : fmt(data.y[i]) + " MeV"}`);
    rows.push("models: " + data.models.map((m, k) => `${esc(m)} ${fmt(data.F[k][i])}`).join(", "));
    data.mixers.forEach((m) => {
      if (m.mean[i] === null) return;
      rows.push(`${esc(m.label)}: ${fmt(m.mean[i])} [${fmt(m.lo95[i])}, ${fmt(m.hi95[i])}]` +
                (m.p_exist && m.p_exist[i] !== null ? ` · P(>0) ${fmt(m.p_exist[i], 3)}` : ""));
    });
    if (mix.weights && mix.weights[0][i] !== null) {
      rows.push(`weights (${esc(mix.label)}): ` +
                data.models.map((m, k) => `${esc(m)} ${fmt(mix.weights[k][i], 2)}`).join(", "));
    }
    tip.innerHTML = rows.map((r) => `<div>${r}</div>`).join("");
    tip.hidden = false;
    tip.dataset.zn = `${data.Z[i]},${data.N[i]}`;
    place(ev);
  }

  function place(ev) {
    const box = svg.parentNode.getBoundingClientRect();
    tip.style.left = `${ev.clientX - box.left + 14}px`;
    tip.style.top = `${ev.clientY - box.top + 14}px`;
  }

  mixSel.addEventListener("change", draw);
  laySel.addEventListener("change", draw);
  draw();
  svg.dataset.ready = "yes";
})();
