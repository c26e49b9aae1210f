'use strict'

// The SVG chart of a benchmark run: one horizontal bar per comparison (our result / the
// baseline's, 1.0 = as fast), its target drawn as a line across the bar's row, green when
// the target is met and red when not. Absolute targets (a time or a memory limit) get a
// bar too, as limit / value: 1.0 is the limit, more is room to spare.
//
// Written by hand: the chart is a few dozen <rect>, <line> and <text> elements, and a
// chart library would bring a browser-side renderer (or a DOM in Node) and its
// dependencies into the dev tree for what a template string does.
//
//   node benchmark/chart.js bench-results/<run>.json [out.svg]

const fs = require('node:fs')

const ROW = 22 // height of a row, px
const LABEL = 620 // width of the label column
const PLOT = 420 // width of the bars' area
const PAD = 12
const MET = '#2e7d32'
const UNMET = '#c62828'

/** Escapes text for an XML attribute or element. */
function xml(text) {
  return String(text).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c])
}

function number(v) {
  return Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)) : String(v)
}

/** Scenario titles without their parenthesised details (as the summary table shows them). */
function shortTitle(title) {
  return title.replace(/ \(.*\)$/, '')
}

/**
 * The bars of a run's report (the JSON `npm run bench` writes): one per comparison, then
 * one per absolute target, each `{ label, ratio, target, met, detail }`.
 */
function bars(report) {
  const out = []
  for (const r of report.results) {
    const byId = Object.fromEntries(r.variants.map((v) => [v.id, v]))
    for (const c of r.comparisons) {
      const ours = byId[c.ours]
      const base = byId[c.base]
      out.push({
        label: `${shortTitle(r.title)}: ${ours ? ours.label : c.ours} vs ${base ? base.label : c.base}`,
        ratio: c.ratio,
        target: c.min,
        met: c.met,
        detail: `${number(c.ratio)}× (target ≥ ${c.min}×)`,
      })
    }
    for (const a of r.absolute || []) {
      out.push({
        label: `${shortTitle(r.title)}: ${a.what === 'rss' ? 'memory' : 'time'} of ${byId[a.id] ? byId[a.id].label : a.id}`,
        ratio: a.max / a.value,
        target: 1,
        met: a.met,
        detail: `${number(a.value)} ${a.unit} (limit ${a.max} ${a.unit})`,
      })
    }
  }
  return out
}

/** The SVG document of a run's report, as a string. */
function chartSvg(report) {
  const list = bars(report)
  const finite = list.map((b) => b.ratio).filter(Number.isFinite)
  // Linear scale from 0 to at least 2×; ratios beyond 4× are cut (and marked).
  const scaleMax = Math.min(4, Math.max(2, Math.ceil(Math.max(0, ...finite) * 2) / 2))
  const x = (ratio) => LABEL + (PLOT * Math.min(Math.max(ratio, 0), scaleMax)) / scaleMax
  const top = 48
  const height = top + list.length * ROW + 40
  const width = LABEL + PLOT + 190
  const met = list.filter((b) => b.met).length
  const parts = []
  parts.push(`<?xml version="1.0" encoding="UTF-8"?>`)
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`)
  parts.push(`<title>${xml(`vhd benchmark, ${report.mode || ''} run of ${report.started || ''}`)}</title>`)
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`)
  const machine = report.machine ? `${report.machine.cpu}, ${report.machine.cores} cores` : ''
  parts.push(`<text x="${PAD}" y="20" font-size="14" font-weight="bold">${xml(`vhd benchmark (${report.mode || 'run'}, ${report.sizeMiB} MiB disks, ${report.trials} trials): ${met} of ${list.length} targets met`)}</text>`)
  parts.push(`<text x="${PAD}" y="36" fill="#555555">${xml(`ratio: ours / baseline (higher is better); the black line is the target; ${machine}; ${report.started || ''}`)}</text>`)
  // Scale: a grid line every 0.5×.
  for (let t = 0; t <= scaleMax + 1e-9; t += 0.5) {
    const gx = x(t).toFixed(1)
    parts.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${top + list.length * ROW}" stroke="${t === 1 ? '#999999' : '#e0e0e0'}"/>`)
    parts.push(`<text x="${gx}" y="${top + list.length * ROW + 16}" text-anchor="middle" fill="#555555">${t}×</text>`)
  }
  list.forEach((b, i) => {
    const y = top + i * ROW
    const colour = b.met ? MET : UNMET
    const end = Number.isFinite(b.ratio) ? x(b.ratio) : LABEL
    const cut = Number.isFinite(b.ratio) && b.ratio > scaleMax
    parts.push(
      `<g class="comparison ${b.met ? 'met' : 'unmet'}">` +
        `<text x="${LABEL - 8}" y="${y + 15}" text-anchor="end">${xml(b.label.length > 95 ? b.label.slice(0, 94) + '…' : b.label)}<title>${xml(b.label)}</title></text>` +
        `<rect class="bar" x="${LABEL}" y="${y + 4}" width="${(end - LABEL).toFixed(1)}" height="${ROW - 8}" fill="${colour}"/>` +
        `<line class="target" x1="${x(b.target).toFixed(1)}" y1="${y + 1}" x2="${x(b.target).toFixed(1)}" y2="${y + ROW - 1}" stroke="#000000" stroke-width="2"/>` +
        `<text x="${LABEL + PLOT + 8}" y="${y + 15}" fill="${colour}">${xml(`${b.met ? 'met' : 'NOT met'}: ${b.detail}${cut ? ' (bar cut)' : ''}`)}</text>` +
        `</g>`,
    )
  })
  parts.push(`</svg>`)
  return parts.join('\n') + '\n'
}

/** Writes the chart of `report` to `file`. */
function writeChart(report, file) {
  fs.writeFileSync(file, chartSvg(report))
}

module.exports = { chartSvg, writeChart, bars }

if (require.main === module) {
  const [input, output] = process.argv.slice(2)
  if (!input) {
    console.error('usage: node benchmark/chart.js RESULTS.json [OUT.svg]')
    process.exit(2)
  }
  const out = output || input.replace(/\.json$/, '') + '.svg'
  writeChart(JSON.parse(fs.readFileSync(input, 'utf8')), out)
  console.log(`chart written to ${out}`)
}
