// config_doc.test.mjs - `pollgate --config-doc=FORMAT`: the configuration
// reference generated from gw_config's tables, as shipped (the unit test
// compares the library output; this checks the command line on top).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { runPollgate, describeRun, SRCDIR } from './lib.mjs';

test('--config-doc=ini prints conf/pollgate.ini, exit 0', async (t) => {
  const r = await runPollgate(t, ['--config-doc=ini']);
  assert.equal(r.code, 0, describeRun(r));
  assert.equal(r.stdout, readFileSync(path.join(SRCDIR, 'conf/pollgate.ini'), 'utf8'));
});

test('--config-doc=man prints contrib/man/pollgate.ini.5', async (t) => {
  const r = await runPollgate(t, ['--config-doc', 'man']);
  assert.equal(r.code, 0, describeRun(r));
  assert.equal(r.stdout, readFileSync(path.join(SRCDIR, 'contrib/man/pollgate.ini.5'), 'utf8'));
});

test('--config-doc=markdown prints the README reference', async (t) => {
  const r = await runPollgate(t, ['--config-doc=markdown']);
  assert.equal(r.code, 0, describeRun(r));
  const readme = readFileSync(path.join(SRCDIR, 'README.md'), 'utf8');
  const begin = '<!-- config-doc begin -->\n';
  const part = readme.slice(readme.indexOf(begin) + begin.length,
                            readme.indexOf('<!-- config-doc end -->'));
  assert.equal(r.stdout, part);
});

test('--config-doc with an unknown format: usage error, exit 2', async (t) => {
  const r = await runPollgate(t, ['--config-doc=html']);
  assert.equal(r.code, 2, describeRun(r));
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /unknown format 'html' \(ini, markdown or man\)/);
});
