// resolve_ws.mjs - lets the shipped demo upstream (contrib/demo/upstream.mjs)
// run from the test suite: `node --import <this file> upstream.mjs`.
//
// ES modules ignore NODE_PATH, so `import 'ws'` only finds
// contrib/demo/node_modules. When that is not installed, a bare specifier is
// resolved again as if imported from test/ (test/node_modules, installed by
// `npm ci` in test/). The same file registers itself as the resolve hook
// (main thread) and is the hook (the loader thread).

import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const FROM_TEST = new URL('../package.json', import.meta.url).href;

if (isMainThread) register(import.meta.url);

function isBare(spec) {
  return !/^(\.{0,2}\/|[a-z][a-z0-9+.-]*:)/i.test(spec);
}

export async function resolve(spec, context, next) {
  if (!isBare(spec)) return next(spec, context);
  try {
    return await next(spec, context);
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
    return next(spec, { ...context, parentURL: FROM_TEST });
  }
}
