// Builds plotly-custom.min.js (see README.md beside this file) from the plotly.js npm package, the way plotly.js's
// own tasks/partial_bundle.mjs builds its partial bundles (that task is in its git repository, not in the package):
// lib/index.js with the requires of the traces (and calendars) not wanted removed, bundled by esbuild with the
// settings of plotly.js's esbuild-config.js (iife, globalName Plotly, target es2016, global -> window) and its
// compress_attributes transform (attribute descriptions stripped), minified, the licence header prepended.
// Run in a directory holding node_modules/plotly.js and node_modules/esbuild:
//   node build.mjs <name> <trace,trace,...> [calendars]    (scatter is always included, as in plotly.js's bundles)
// Writes dist/plotly-<name>.min.js.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';

const [name, traceArg, withCalendars] = process.argv.slice(2);
const traces = [...new Set(['scatter', ...traceArg.split(',')])].sort();
const pkg = path.resolve('node_modules/plotly.js');
const version = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'))).version;
let index = fs.readFileSync(path.join(pkg, 'lib/index.js'), 'utf8');
const all = [...index.matchAll(/require\('\.\/([a-z0-9]+)'\)/g)].map((m) => m[1]).filter((t) => t !== 'core');
const includes = [...(withCalendars ? ['calendars'] : []), ...traces];
for (const t of all.filter((t) => !includes.includes(t))) {
  const next = index.replace(new RegExp(`\\s*require\\('\\./${t}'\\),`, 'g'), '');
  if (next === index) throw new Error(`unable to drop ${t}`);
  index = next;
}
const entry = path.join(pkg, 'lib', `index-${name}.js`);
fs.writeFileSync(entry, index);

// tasks/compress_attributes.js of plotly.js
const W = '\\s*', C = ',?';
const strRe = (a) => new RegExp(W + a + ": '.*'" + C, 'g');
const joinedRe = (a) => new RegExp(W + a + ': \\[[\\s\\S]*?\\]' + '\\.join\\(\\s*\'[^\']*\'\\s*\\)' + C, 'g');
const arrRe = (a) => new RegExp(W + a + ': \\[[\\s\\S]*?\\]' + C, 'g');
const compress = {
  name: 'compress-attributes',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      const src = fs.readFileSync(args.path, 'utf8');
      return { contents: src.replace(strRe('description'), '').replace(joinedRe('description'), '')
        .replace(arrRe('requiredOpts'), '').replace(arrRe('otherOpts'), '').replace(strRe('hrName'), ''), loader: 'js' };
    });
  },
};
const out = path.resolve(`dist/plotly-${name}.min.js`);
fs.mkdirSync('dist', { recursive: true });
await build({
  entryPoints: [entry], outfile: out, format: 'iife', globalName: 'Plotly', bundle: true, minify: true,
  sourcemap: false, target: 'es2016', plugins: [compress], alias: { stream: 'stream-browserify' },
  define: { global: 'window', 'define.amd': 'false', 'process.env.NODE_DEBUG': 'false' }, logLevel: 'warning',
});
const year = new Date().getFullYear();
// The first line asks V8 to compile every function of the file eagerly, while the file downloads and off the main
// thread (https://v8.dev/blog/explicit-compile-hints), instead of one by one on the main thread when first called.
const hint = '//# allFunctionsCalledOnLoad\n';
const header = `/**\n* plotly.js (${name} - minified) v${version}\n* traces: ${traces.join(', ')}${withCalendars ? '; calendars' : ''}\n* Copyright 2012-${year}, Plotly, Inc.\n* All rights reserved.\n* Licensed under the MIT license\n*/\n`;
fs.writeFileSync(out, hint + header + fs.readFileSync(out, 'utf8'));
fs.unlinkSync(entry);
console.log(out, fs.statSync(out).size, 'traces:', traces.join(','), withCalendars ? '+calendars' : '');
