// tests/browser/test_page.mjs: the m2fp web page in a real browser.
//
// Starts `m2fp serve` (M2FP_BIN) on a free port with the synthetic CIHP checkpoint
// (M2FP_TESTDATA/cihp_synth.safetensors), drives Debian's chromium headless through playwright-core,
// uploads a photo the test draws itself (or M2FP_PHOTO), and checks: the synthetic-weights warning,
// progress while it works, the coloured parsing drawn over the photo, the legend, each person's garments
// with colour swatches, the suggestions with their reasons, a style change (recommendations again
// without a second upload), a second photo dropped on the page (drag and drop, answered from the
// cache), no script errors. Keeps a screenshot: $M2FP_ARTIFACTS/page.png (default: ./artifacts).
//
// Exit: 0 pass, 1 fail, 77 skipped (playwright-core not installed or no chromium) unless
// M2FP_REQUIRE_BROWSER=1, which turns a skip into a failure (scripts/test.sh sets it).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN = process.env.M2FP_BIN || path.join(repo, 'build', 'm2fp');
const TESTDATA = process.env.M2FP_TESTDATA || path.join(repo, 'build', 'testdata');
const MODEL = path.join(TESTDATA, 'cihp_synth.safetensors');
const ART = process.env.M2FP_ARTIFACTS || path.join(here, 'artifacts');
const CHROMIUM = process.env.M2FP_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env.M2FP_BROWSER_TIMEOUT_MS || 600000);

function skip(why) {
  if (process.env.M2FP_REQUIRE_BROWSER === '1') {
    console.error(`FAIL: ${why} (M2FP_REQUIRE_BROWSER=1)`);
    process.exit(1);
  }
  console.log(`SKIP: ${why}`);
  process.exit(77);
}

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  skip(`playwright-core is not installed: run \`npm ci\` in tests/browser (${e.message.split('\n')[0]})`);
}
if (!fs.existsSync(CHROMIUM)) skip(`${CHROMIUM} not found: apt-get install chromium (scripts/deps.sh)`);
for (const [what, p] of [['m2fp binary', BIN], ['synthetic checkpoint', MODEL]])
  if (!fs.existsSync(p)) {
    console.error(`FAIL: ${what} ${p} missing`);
    process.exit(1);
  }

// ---- a photo, drawn here: PNG written with zlib -------------------------------------------------------
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(w, h, pixel) {
  const raw = Buffer.alloc((3 * w + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (3 * w + 1)] = 0; // filter: none
    for (let x = 0; x < w; x++) raw.set(pixel(x, y), y * (3 * w + 1) + 1 + 3 * x);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
// Two figures on a wall-and-floor background: skin-coloured heads, coloured tops, blue and dark trousers.
function scene(w, h, shift) {
  return png(w, h, (x, y) => {
    const figs = [{ cx: 0.32 + shift, top: [200, 40, 50], legs: [40, 60, 150] }, { cx: 0.68, top: [240, 240, 235], legs: [45, 45, 50] }];
    for (const f of figs) {
      const dx = x / w - f.cx, fy = y / h;
      if (dx * dx * 4 + (fy - 0.18) ** 2 * 2.2 < 0.004) return [224, 180, 150]; // head
      if (Math.abs(dx) < 0.09 && fy > 0.26 && fy < 0.58) return f.top;
      if (Math.abs(dx) < 0.08 && fy >= 0.58 && fy < 0.93 && Math.abs(dx) > 0.008) return f.legs;
      if (Math.abs(dx) < 0.08 && fy >= 0.93) return [25, 20, 20]; // shoes
    }
    return y < h * 0.8 ? [180 - (y % 40), 175, 160 + ((x >> 3) % 9)] : [120, 100, 80];
  });
}

fs.mkdirSync(ART, { recursive: true });
const photo = process.env.M2FP_PHOTO || path.join(ART, 'two_people.png');
if (!process.env.M2FP_PHOTO) fs.writeFileSync(photo, scene(320, 240, 0));
const photo2 = path.join(ART, 'two_people_b.png');
fs.writeFileSync(photo2, scene(320, 240, 0.04));

// ---- the server --------------------------------------------------------------------------------------
const catalog = path.join(ART, 'catalog.db');
fs.rmSync(catalog, { force: true });
const server = spawn(BIN, ['serve', '--model', MODEL, '--port', '0', '--catalog', catalog, '--short-edge', '128',
  '--max-size', '256', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
let serverErr = '';
server.stderr.on('data', (d) => { serverErr += d; });
const url = await new Promise((resolve, reject) => {
  const rl = readline.createInterface({ input: server.stdout });
  rl.on('line', (line) => {
    const m = line.match(/listening on (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  server.on('exit', (code) => reject(new Error(`m2fp serve exited (${code}) before listening:\n${serverErr}`)));
  // unref: a pending timer keeps node running, and this one would hold the test ~2 minutes past its end
  setTimeout(() => reject(new Error(`m2fp serve did not start in 120 s:\n${serverErr}`)), 120000).unref();
});

// ---- the browser -------------------------------------------------------------------------------------
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2fp-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(TIMEOUT_MS);
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  await page.goto(url + '/');
  await page.waitForFunction(() => document.getElementById('model-info').textContent.includes('worker'));
  const banner = page.locator('#synthetic-banner');
  check(await banner.isVisible(), 'the synthetic-weights warning is shown');
  check((await banner.textContent()).includes('SYNTHETIC'), 'the warning says SYNTHETIC');
  check(await page.locator('#style option').count() > 1, 'style choices come from the server');

  // Upload through the file input; the progress line must show while the server works.
  const t0 = Date.now();
  await page.setInputFiles('#file', photo);
  const progressVisible = () => {
    const p = document.getElementById('progress');
    return !p.hidden && getComputedStyle(p).display !== 'none' && p.getBoundingClientRect().height > 0;
  };
  await page.waitForFunction(progressVisible, null, { timeout: 30000 });
  const progressSeen = await page.evaluate(() => document.getElementById('progress-text').textContent);
  check(progressSeen.length > 0, `progress shown while working ("${progressSeen}")`);
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state));
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state === 'error') throw new Error('the page shows an error: ' + (await page.locator('#error').textContent()));
  console.log(`     parsed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  check(!(await page.evaluate(progressVisible)), 'progress hidden once done');

  // The overlay: canvas at the photo's size, and visibly different from the bare photo.
  const overlay = await page.evaluate(() => {
    const c = document.getElementById('overlay');
    const photo = document.createElement('canvas');
    photo.width = c.width;
    photo.height = c.height;
    photo.getContext('2d').drawImage(state.photo, 0, 0, c.width, c.height);
    const a = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const b = photo.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let changed = 0;
    for (let i = 0; i < a.length; i += 4) if (Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]) > 30) changed++;
    return { w: c.width, h: c.height, changed, total: a.length / 4, visible: c.getBoundingClientRect().width > 0 };
  });
  check(overlay.w === 320 && overlay.h === 240, `overlay canvas ${overlay.w}x${overlay.h} (photo 320x240)`);
  check(overlay.visible, 'overlay visible');
  check(overlay.changed > overlay.total * 0.02, `parsing colours drawn over the photo (${overlay.changed} of ${overlay.total} px changed)`);

  const legend = await page.locator('#legend li').allTextContents();
  check(legend.length >= 1 && !legend[0].includes('nothing'), `legend: ${legend.length} labels (${legend.slice(0, 4).join(' | ')})`);
  const swatchesInLegend = await page.locator('#legend .swatch').count();
  check(swatchesInLegend === legend.length, 'a colour swatch per legend entry');

  await page.waitForSelector('#persons .person');
  const persons = await page.locator('#persons .person').count();
  const garments = await page.locator('#persons .garment').count();
  const colourSwatches = await page.locator('#persons .garment .colour .swatch').count();
  const recs = await page.locator('#persons .recommendation').count();
  const reasons = await page.locator('#persons .recommendation .reason').allTextContents();
  check(persons >= 1, `persons shown: ${persons}`);
  check(garments >= 1, `garments shown: ${garments}`);
  check(colourSwatches >= garments, `colour swatches with names: ${colourSwatches}`);
  check(recs >= 1 && reasons.every((r) => r.trim().length > 10), `recommendations with reasons: ${recs} (e.g. "${reasons[0]}")`);

  // A style change: suggestions again, by the photo's SHA-256 (no second upload).
  const uploadsBefore = await page.evaluate(async () => (await (await fetch('/metrics')).text()));
  await page.selectOption('#style', 'formal');
  await page.waitForFunction(() => document.getElementById('reco-status').textContent.includes('style formal'));
  const uploadsAfter = await page.evaluate(async () => (await (await fetch('/metrics')).text()));
  const jobsCount = (t) => Number((t.match(/m2fp_http_requests_total\{endpoint="\/jobs",code="202"\} (\d+)/) || [0, 0])[1]);
  check(jobsCount(uploadsAfter) === jobsCount(uploadsBefore), 'style change re-ranks without uploading the photo again');
  check(await page.locator('#persons .recommendation').count() >= 1, 'recommendations after the style change');

  await page.screenshot({ path: path.join(ART, 'page.png'), fullPage: true });
  console.log(`     screenshot: ${path.join(ART, 'page.png')}`);

  // Drag and drop a second photo onto the drop zone, then the first again (now from the cache).
  const dropFile = async (file) => {
    const b64 = fs.readFileSync(file).toString('base64');
    await page.evaluate((data) => {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
      document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, b64);
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state));
    return page.evaluate(() => ({ state: document.body.dataset.state, meta: document.getElementById('result-meta').textContent, error: document.getElementById('error').textContent }));
  };
  const d1 = await dropFile(photo2);
  check(d1.state === 'done', `dropped photo parsed (${d1.meta || d1.error})`);
  const d2 = await dropFile(photo);
  check(d2.state === 'done' && d2.meta.includes('from the cache'), `the first photo again comes from the cache (${d2.meta})`);
  await page.screenshot({ path: path.join(ART, 'page_after_drop.png'), fullPage: true });

  // A bad file: the page says what is wrong and keeps working.
  const bad = path.join(ART, 'not_a_photo.png');
  fs.writeFileSync(bad, 'this is text, not a PNG\n');
  await page.setInputFiles('#file', bad);
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state));
  const errText = await page.locator('#error').textContent();
  check(errText.includes('not an image'), `a text file is refused on the page ("${errText}")`);
  check(!(await page.locator('#result').isHidden()) && (await page.locator('#persons .person').count()) >= 1,
    'an error keeps the previous result on the page');

  // Who is who: persons numbered on the photo, a hovered card highlights that person's mask.
  const pixels = () => page.evaluate(() => {
    const c = document.getElementById('overlay');
    return { focus: c.dataset.focus, data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 === 0)) };
  });
  const before = await pixels();
  await page.hover('#persons .person >> nth=0');
  const hovered = await pixels();
  const diff = (a, b) => a.data.reduce((n, v, i) => n + (Math.abs(v - b.data[i]) > 10 ? 1 : 0), 0);
  check(hovered.focus === 'person:0' && diff(before, hovered) > 0, `hovering person 1 highlights its mask (${diff(before, hovered)} px change)`);
  await page.mouse.move(0, 0);
  // Legend isolation: clicking an entry shows that label alone; clicking again shows all.
  await page.click('#legend li[data-label] >> nth=0');
  const isolated = await pixels();
  const id = await page.getAttribute('#legend li[data-label] >> nth=0', 'data-label');
  check(isolated.focus === `label:${id}` && (await page.locator('#legend li.active').count()) === 1, `legend entry isolates label ${id}`);
  await page.click('#legend li[data-label] >> nth=0');
  check((await pixels()).focus === '', 'a second click shows every label again');
  // Downloads: labels.png (palette PNG of ids), the coloured picture and the JSON.
  const dls = await page.evaluate(() => Array.from(document.querySelectorAll('#downloads a')).map((a) => [a.getAttribute('download'), a.href.slice(0, 40)]));
  check(dls.length === 3 && dls[0][0] === 'labels.png' && dls[0][1].startsWith('data:image/png;base64,iVBOR') &&
        dls[2][0] === 'result.json' && dls[2][1].startsWith('blob:'), `download links ${JSON.stringify(dls.map((d) => d[0]))}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#downloads a >> nth=2')]);
  const saved = path.join(ART, 'downloaded_result.json');
  await download.saveAs(saved);
  const dj = JSON.parse(fs.readFileSync(saved, 'utf8'));
  check(Array.isArray(dj.masks) && Array.isArray(dj.labels) && dj.masks.length === dj.labels.length, 'the JSON download is the /predict answer (masks/labels lists)');
  // zh / en switch: interface and label names.
  await page.click('#lang');
  const zh = await page.evaluate(() => ({ drop: document.querySelector('#dropzone .big').textContent, legend: document.getElementById('legend').textContent, lang: document.documentElement.lang }));
  check(zh.lang === 'zh-CN' && zh.drop === '把照片拖到这里' && /[\u4e00-\u9fff]/.test(zh.legend), `zh switch (${zh.drop} · ${zh.legend.slice(0, 20)})`);
  await page.click('#lang');
  check((await page.locator('#dropzone .big').textContent()) === 'Drop a photo here', 'back to English');

  const unexpected = consoleErrors.filter((e) => !e.includes('415') && !e.includes('Unsupported Media Type'));
  check(unexpected.length === 0, `no script errors${unexpected.length ? ': ' + unexpected.join(' | ') : ''}`);
} catch (e) {
  failures.push(String(e && e.stack ? e.stack : e));
  console.error('FAIL', e);
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
  server.kill('SIGTERM');
  await new Promise((r) => { server.on('exit', r); setTimeout(r, 60000).unref(); });
}
if (failures.length) {
  console.error(`${failures.length} check(s) failed\nserver log:\n${serverErr.slice(-3000)}`);
  process.exit(1);
}
console.log('browser test passed');
