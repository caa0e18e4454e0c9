// Builds @restlive/client (client/ at the repository's root) and writes its
// ES modules into the page's assets, todoapp/web/lib/restlive-client/, which
// the Go binary embeds: `go run ./examples/todolist` then needs no Node.
//
//   npm run client-assets          after changing client/src (in this directory)
//   node client-assets.mjs DIR     writes the modules to DIR instead: the Go
//                                  test TestClientAssets compares that with
//                                  what the binary embeds
//
// The build is the package's own (`npm run build` in client/, its
// tsconfig.json), into a temporary directory, without the source maps and
// declarations the page does not load. (The directory is not called
// "vendor": Go leaves files under a nested vendor/ directory out of module
// zips, so `go install` of the example would miss them.)
//
// Exit status: 0 written; 1 the build failed; 2 bad usage.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const clientDir = resolve(here, '../../../client');
const defaultOut = resolve(here, '../todoapp/web/lib/restlive-client');

// Each file says where it came from, so that nobody edits the copy.
const header = '// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.\n';

if (process.argv.length > 3) {
  console.error('usage: node client-assets.mjs [DIR]');
  process.exit(2);
}
const out = resolve(process.argv[2] ?? defaultOut);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: clientDir, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    console.error(`client-assets: ${cmd} ${args.join(' ')} in ${clientDir} failed (${r.error?.message ?? `exit ${r.status}`})`);
    process.exit(1);
  }
}

// The build needs the package's own TypeScript, at the version its lock
// file pins: another tsc could emit other bytes.
if (!existsSync(join(clientDir, 'node_modules', 'typescript'))) {
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

const build = mkdtempSync(join(tmpdir(), 'restlive-client-'));
try {
  run('npm', [
    'run', '--silent', 'build', '--',
    '--outDir', build, '--sourceMap', 'false', '--declaration', 'false', '--declarationMap', 'false',
  ]);
  const modules = readdirSync(build).filter((f) => f.endsWith('.js')).sort();
  if (!modules.includes('index.js')) {
    console.error(`client-assets: the build of ${clientDir} made no index.js`);
    process.exit(1);
  }
  // Replaced as a whole, so that a module the client no longer has goes too.
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const f of modules) writeFileSync(join(out, f), header + readFileSync(join(build, f), 'utf8'));
  console.log(`client-assets: ${modules.length} modules written to ${out}`);
} finally {
  rmSync(build, { recursive: true, force: true });
}
