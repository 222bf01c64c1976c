// Drives `capforge rate serve` with Chromium (playwright-core): two raters answer every sample,
// no script in a caption ever runs, and `rate report` matches the answers given.
// usage: node rate_e2e.mjs CAPFORGE_BIN PLAYWRIGHT_CORE_DIR CHROMIUM WORKDIR
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const [bin, pwDir, chromiumPath, work] = process.argv.slice(2);
const { chromium } = await import(path.join(pwDir, 'index.mjs'));

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exitCode = 1;
  throw new Error(msg);
}
function expectEq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) fail(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

const db = path.join(work, 'study.sqlite');
const links = path.join(work, 'links.json');
const server = spawn(bin, ['rate', 'serve', '--samples', path.join(work, 'pred.jsonl'), '--images',
  path.join(work, 'shards'), '--refs', path.join(work, 'pred.jsonl'), '--refs-col', 'truth', '--db', db,
  '--port', '0', '--raters', 'alice,bob', '--tokens-out', links], { stdio: ['ignore', 'inherit', 'inherit'] });
let browser;
try {
  for (let i = 0; i < 200 && !fs.existsSync(links); ++i) await new Promise(r => setTimeout(r, 50));
  if (!fs.existsSync(links)) fail('the server did not start');
  const urls = JSON.parse(fs.readFileSync(links, 'utf8'));
  expectEq(Object.keys(urls).sort(), ['alice', 'bob'], 'raters');

  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const answers = [];
  for (const [r, name] of ['alice', 'bob'].entries()) {
    const page = await browser.newPage();
    const dialogs = [];
    page.on('dialog', d => { dialogs.push(d.message()); d.dismiss(); });
    await page.goto(urls[name]);
    for (let i = 0; i < 10; ++i) {
      expectEq(await page.textContent('#position'), String(i + 1), `${name} position`);
      expectEq(await page.textContent('#total'), '10', `${name} total`);
      const width = await page.$eval('#image', img => img.complete ? img.naturalWidth : 0);
      if (!(width > 0)) fail(`${name}: image ${i + 1} did not load`);
      const caption = await page.textContent('#caption');
      if (!caption) fail(`${name}: empty caption`);
      const believed = (i + r) % 3 === 0 ? 'ai' : 'human';
      const score = (i * 2 + r) % 6;
      await page.check(`#believed-${believed}`);
      await page.check(`#score-${score}`);
      await Promise.all([page.waitForNavigation(), page.click('#submit')]);
      answers.push({ rater: name, caption, believed, score });
    }
    if (!(await page.isVisible('#done'))) fail(`${name}: no thank-you page`);
    // hostile captions are shown as text, verbatim
    const hostile = answers.filter(a => a.rater === name && /alert\(/.test(a.caption)).map(a => a.caption);
    expectEq(hostile.length, 2, `${name}: hostile captions shown as text (${JSON.stringify(hostile)})`);
    for (const h of hostile) if (!/^(<script>|" onmouseover=)/.test(h)) fail(`${name}: caption altered: ${h}`);
    expectEq(dialogs, [], `${name}: script from a caption ran`);
    // an unknown token gets nothing
    const forged = await page.goto(urls[name].replace(/\/r\/[0-9a-f]+$/, '/r/' + '0'.repeat(32)));
    expectEq(forged.status(), 403, 'forged token');
    await page.close();
  }
  await browser.close();
  browser = undefined;
  server.kill('SIGINT');
  await new Promise(r => server.once('exit', r));

  const csvPath = path.join(work, 'ratings.csv');
  const report = JSON.parse(execFileSync(bin, ['rate', 'report', '--db', db, '--json', '--csv', csvPath]));
  expectEq(report.ratings, 20, 'ratings');
  expectEq(report.raters, 2, 'raters');
  // RFC 4180 rows -> objects
  const text = fs.readFileSync(csvPath, 'utf8');
  const rows = [];
  let row = [], cell = '', quoted = false;
  for (let i = 0; i < text.length; ++i) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; ++i; } else if (c === '"') quoted = false; else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; }
    else if (c === '\r') {}
    else if (c === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; }
    else cell += c;
  }
  const [head, ...body] = rows;
  const recs = body.map(r => Object.fromEntries(head.map((h, i) => [h, r[i]])));
  expectEq(recs.length, 20, 'csv rows');
  const key = a => `${a.rater}|${a.caption}|${a.believed}|${a.score}`;
  expectEq(recs.map(r => key({ rater: r.rater, caption: r.caption.replace(/^'/, ''), believed: r.believed_source,
    score: Number(r.score) })).sort(), answers.map(key).sort(), 'csv matches the clicks');
  // the report's tables from the CSV's truth and the clicks
  const stats = xs => {
    const n = xs.length, mean = xs.reduce((a, b) => a + b, 0) / n;
    const sd = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
    return { n, mean, sd };
  };
  const close = (a, b, what) => {
    if (a.n !== b.n || Math.abs(a.mean - b.mean) > 1e-9 || Math.abs(a.sd - b.sd) > 1e-9) fail(`${what}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  };
  for (const src of ['human', 'ai']) {
    close(report.by_true_source[src], stats(recs.filter(r => r.true_source === src).map(r => Number(r.score))), `true ${src}`);
    close(report.by_believed_source[src], stats(answers.filter(a => a.believed === src).map(a => a.score)), `believed ${src}`);
    close(report.by_believed_source_excluding_0_1[src],
      stats(answers.filter(a => a.believed === src && a.score > 1).map(a => a.score)), `believed ${src} > 1`);
  }
  const ai = recs.filter(r => r.true_source === 'ai');
  expectEq(report.ai_judged_human, ai.filter(r => r.believed_source === 'human').length, 'AI judged human');
  expectEq(ai.length + recs.filter(r => r.true_source === 'human').length, 20, 'sources');
  console.log(`ok: 2 raters x 10 samples in ${await chromiumVersion()}; report matches (${report.ai_judged_human_pct.toFixed(1)}% of AI captions judged human)`);
} finally {
  if (browser) await browser.close();
  if (server.exitCode === null) server.kill('SIGKILL');
}

async function chromiumVersion() {
  return execFileSync(chromiumPath, ['--version']).toString().trim().split(' ').slice(0, 2).join(' ');
}
