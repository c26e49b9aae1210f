'use strict'

// The SVG chart `npm run bench` writes beside its JSON (benchmark/chart.js), made from a
// saved results file (__test__/fixtures/bench-results.json, a real run): well-formed XML,
// one bar per comparison (and per absolute target), coloured and labelled by whether its
// target was met, with the target drawn on each bar's row.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { chartSvg } = require('../benchmark/chart.js')

const RESULTS = path.join(__dirname, 'fixtures', 'bench-results.json')

/**
 * A small XML well-formedness check: one root element, every element closed in order,
 * attributes quoted and not repeated, only the five predefined entities or character
 * references, no `<` or stray `&` in text. Returns the elements as { name, attrs, text }.
 */
function parseXml(text) {
  const elements = []
  const stack = []
  let i = 0
  let roots = 0
  const fail = (why) => assert.fail(`not well-formed XML at ${i}: ${why}: ${JSON.stringify(text.slice(i, i + 60))}`)
  const checkText = (t) => {
    if (t.includes('<')) fail('"<" in text')
    for (const m of t.matchAll(/&([^;]*);?/g)) {
      if (!m[0].endsWith(';') || !/^(lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+)$/.test(m[1])) fail(`bad entity ${m[0]}`)
    }
  }
  if (text.startsWith('<?xml')) {
    i = text.indexOf('?>') + 2
    if (i < 2) fail('unclosed XML declaration')
  }
  while (i < text.length) {
    const lt = text.indexOf('<', i)
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt)
    if (stack.length === 0 && chunk.trim() !== '') fail('text outside the root element')
    checkText(chunk)
    if (stack.length) stack[stack.length - 1].text += chunk
    if (lt < 0) break
    i = lt
    const gt = text.indexOf('>', i)
    if (gt < 0) fail('unclosed tag')
    const tag = text.slice(i + 1, gt)
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim()
      const open = stack.pop()
      if (!open || open.name !== name) fail(`</${name}> closes ${open ? `<${open.name}>` : 'nothing'}`)
    } else {
      const selfClosing = tag.endsWith('/')
      const body = selfClosing ? tag.slice(0, -1) : tag
      const m = /^([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*$/.exec(body)
      if (!m) fail(`bad tag <${tag}>`)
      const attrs = {}
      for (const a of m[2].matchAll(/([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        if (a[1] in attrs) fail(`attribute ${a[1]} twice`)
        const value = a[2] ?? a[3]
        checkText(value)
        attrs[a[1]] = value
      }
      if (stack.length === 0) roots += 1
      const element = { name: m[1], attrs, text: '', parent: stack[stack.length - 1] || null }
      elements.push(element)
      if (!selfClosing) stack.push(element)
    }
    i = gt + 1
  }
  if (stack.length) fail(`<${stack[stack.length - 1].name}> never closed`)
  assert.equal(roots, 1, 'one root element')
  return elements
}

test('the XML check itself refuses what is not well-formed', () => {
  for (const bad of ['<a><b></a></b>', '<a>x & y</a>', '<a b="1" b="2"/>', '<a>', '<a/><b/>', '<a c=1/>']) {
    assert.throws(() => parseXml(bad), /not well-formed|one root/, bad)
  }
  assert.equal(parseXml('<a x="&amp;"><b/>t &lt; u</a>').length, 2)
})

test('the chart of a saved run is well-formed SVG with one bar per comparison', () => {
  const report = JSON.parse(fs.readFileSync(RESULTS, 'utf8'))
  const comparisons = report.results.flatMap((r) => r.comparisons)
  const absolutes = report.results.flatMap((r) => r.absolute || [])
  const targets = [...comparisons, ...absolutes]
  assert.ok(comparisons.length >= 10, 'the fixture is a full run')
  const svg = chartSvg(report)
  const elements = parseXml(svg)
  assert.equal(elements[0].name, 'svg')
  assert.equal(elements[0].attrs.xmlns, 'http://www.w3.org/2000/svg')
  const bars = elements.filter((e) => e.name === 'rect' && e.attrs.class === 'bar')
  assert.equal(bars.length, targets.length, 'one bar per comparison and absolute target')
  const rows = elements.filter((e) => e.name === 'g' && /\bcomparison\b/.test(e.attrs.class))
  assert.equal(rows.length, targets.length)
  // Each row: its bar, its target line, and says met / NOT met as the results do, in order.
  rows.forEach((row, i) => {
    const inRow = elements.filter((e) => e.parent === row)
    assert.equal(inRow.filter((e) => e.name === 'line' && e.attrs.class === 'target').length, 1, `row ${i}: a target line`)
    const met = targets[i].met
    assert.match(row.attrs.class, met ? /\bmet\b/ : /\bunmet\b/)
    assert.ok(inRow.some((e) => e.name === 'text' && e.text.startsWith(met ? 'met: ' : 'NOT met: ')), `row ${i} says whether it met its target`)
  })
  // The fixture has both kinds of row, and they are told apart by colour.
  const fills = new Set(bars.map((b) => b.attrs.fill))
  assert.equal(fills.size, targets.some((t) => !t.met) && targets.some((t) => t.met) ? 2 : 1)
  // A bar is as long as its ratio says (on one scale): a longer ratio, a longer bar.
  const widths = bars.slice(0, comparisons.length).map((b) => Number(b.attrs.width))
  const ratios = comparisons.map((c) => c.ratio)
  for (let a = 0; a < ratios.length; a++) {
    for (let b = 0; b < ratios.length; b++) {
      if (ratios[a] < ratios[b] && ratios[b] <= 2) assert.ok(widths[a] <= widths[b], `bars ${a} and ${b}`)
    }
  }
})

test('labels are escaped: markup in a scenario title stays text', () => {
  const report = {
    mode: 'quick',
    sizeMiB: 8,
    trials: 1,
    results: [
      {
        title: 'a <b> & "c"',
        variants: [
          { id: 'x', label: "ours <'x'>", median: 1 },
          { id: 'y', label: 'theirs & co', median: 2 },
        ],
        comparisons: [{ ours: 'x', base: 'y', min: 1, ratio: 0.5, met: false }],
      },
    ],
  }
  const elements = parseXml(chartSvg(report))
  assert.equal(elements.filter((e) => e.attrs.class === 'bar').length, 1)
  assert.ok(elements.some((e) => e.name === 'text' && e.text.includes('a &lt;b&gt; &amp; &quot;c&quot;')))
})

test('the command line writes the chart beside the JSON', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhd-chart-'))
  try {
    const json = path.join(dir, 'run.json')
    fs.copyFileSync(RESULTS, json)
    const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'benchmark', 'chart.js'), json], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    const svg = fs.readFileSync(path.join(dir, 'run.svg'), 'utf8')
    assert.equal(svg, chartSvg(JSON.parse(fs.readFileSync(RESULTS, 'utf8'))))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
