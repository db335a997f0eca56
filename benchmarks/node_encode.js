// node_encode.js — the reference side of bench_tokenizer.c: npm's gpt-3-encoder on the same text.
//   node node_encode.js GPT2_DIR TEXT_FILE
// Encodes TEXT_FILE one line at a time (the reference's encode appends with Array.concat, so one
// multi-megabyte string would be quadratic), after one warm-up pass over the first tenth, and
// prints "baseline tokenizer_encode_mb_per_s X" and the token count.
'use strict';
const fs = require('fs');
const [, , dir, file] = process.argv;
const { encode } = require(dir);
const text = fs.readFileSync(file, 'utf8');
// The lines with their newlines, as bench_tokenizer.c cuts them.
const lines = text.split(/(?<=\n)/);
for (const l of lines.slice(0, lines.length / 10)) encode(l);
const t0 = process.hrtime.bigint();
let tokens = 0;
for (const l of lines) tokens += encode(l).length;
const s = Number(process.hrtime.bigint() - t0) / 1e9;
const mb = Buffer.byteLength(text, 'utf8') / 1e6;
console.log(`reference: ${tokens} tokens, ${s.toFixed(3)} s`);
console.log(`baseline tokenizer_encode_mb_per_s ${(mb / s).toFixed(3)}`);
