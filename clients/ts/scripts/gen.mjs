#!/usr/bin/env node
// gen.mjs writes the SDK's generated TypeScript from idl/*.thrift:
//
//   node scripts/gen.mjs <idl dir> <out dir>      (npm run gen)
//
// For each <ns>.thrift, <out>/<ns>.ts holds its constants, an interface per
// struct (the decoded form: fields of default requiredness always present,
// optional ones `?`), an <Struct>Init interface (what a call takes: every
// field optional, defaulted as the Go side does), a runtime descriptor
// <Struct>$ for src/compact.ts, and a client class of its service with one
// typed method per IDL method. <out>/index.ts holds the method table of
// every service, the push events (structs whose doc says they are pushed)
// as a typed map, and ServiceClients, which Session extends.
//
// The parser covers the IDL subset noon uses: namespace, const, struct
// (fields with ids, optional/required, defaults), service (methods with one
// argument), base types, list, set, map, and doc comments.

import { readFileSync, writeFileSync, readdirSync, mkdirSync } from "node:fs";
import { join, basename } from "node:path";

const [idlDir = "../../idl", outDir = "src/gen"] = process.argv.slice(2);

// --- lexer ---------------------------------------------------------------

function lex(src, file) {
  const toks = [];
  let i = 0;
  let line = 1;
  let doc = []; // comment lines since the last token
  let blankAfterDoc = false;
  while (i < src.length) {
    const c = src[i];
    if (c === "\n") {
      line++;
      i++;
      // A blank line separates a comment from what follows.
      const m = /^[ \t\r]*\n/.exec(src.slice(i));
      if (m) blankAfterDoc = true;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "/") {
      const end = src.indexOf("\n", i);
      const text = src.slice(i + 2, end < 0 ? src.length : end).replace(/^ /, "");
      if (blankAfterDoc) doc = [];
      blankAfterDoc = false;
      doc.push(text);
      i = end < 0 ? src.length : end;
      continue;
    }
    if (c === "#") {
      const end = src.indexOf("\n", i);
      i = end < 0 ? src.length : end;
      continue;
    }
    if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      if (end < 0) throw new Error(`${file}:${line}: unterminated comment`);
      const text = src.slice(i + 2, end);
      line += (text.match(/\n/g) || []).length;
      if (blankAfterDoc) doc = [];
      blankAfterDoc = false;
      doc.push(...text.split("\n").map((l) => l.replace(/^\s*\*? ?/, "")));
      i = end + 2;
      continue;
    }
    const tokDoc = blankAfterDoc ? [] : doc;
    doc = [];
    blankAfterDoc = false;
    if (c === '"' || c === "'") {
      const end = src.indexOf(c, i + 1);
      toks.push({ t: "str", v: src.slice(i + 1, end), line, doc: tokDoc });
      i = end + 1;
      continue;
    }
    const m = /^(-?[0-9][0-9.eE+-]*|[A-Za-z_][A-Za-z0-9_.]*)/.exec(src.slice(i));
    if (m) {
      toks.push({ t: /^-?[0-9]/.test(m[1]) ? "num" : "id", v: m[1], line, doc: tokDoc });
      i += m[1].length;
      continue;
    }
    toks.push({ t: "sym", v: c, line, doc: tokDoc });
    i++;
  }
  return toks;
}

// --- parser --------------------------------------------------------------

function parse(src, file) {
  const toks = lex(src, file);
  let p = 0;
  const peek = () => toks[p];
  const next = () => {
    if (p >= toks.length) throw new Error(`${file}: unexpected end`);
    return toks[p++];
  };
  const expect = (v) => {
    const t = next();
    if (t.v !== v) throw new Error(`${file}:${t.line}: want ${v}, got ${t.v}`);
    return t;
  };
  const sep = () => {
    if (peek() && (peek().v === "," || peek().v === ";")) p++;
  };
  function type() {
    const t = next();
    if (t.v === "list" || t.v === "set") {
      expect("<");
      const e = type();
      expect(">");
      return { [t.v]: e };
    }
    if (t.v === "map") {
      expect("<");
      const k = type();
      expect(",");
      const v = type();
      expect(">");
      return { map: [k, v] };
    }
    return t.v;
  }
  function value() {
    const t = next();
    if (t.t === "str") return JSON.stringify(t.v);
    if (t.t === "num") return t.v;
    if (t.v === "true" || t.v === "false") return t.v;
    if (t.v === "[") {
      const out = [];
      while (peek().v !== "]") {
        out.push(value());
        sep();
      }
      next();
      return `[${out.join(", ")}]`;
    }
    throw new Error(`${file}:${t.line}: unsupported value ${t.v}`);
  }
  const mod = { file, namespace: basename(file, ".thrift"), consts: [], structs: [], services: [] };
  while (p < toks.length) {
    const t = next();
    switch (t.v) {
      case "namespace": {
        const lang = next().v;
        const ns = next().v;
        if (lang === "go") mod.namespace = ns;
        break;
      }
      case "include":
      case "cpp_include":
        next();
        break;
      case "const": {
        const ty = type();
        const name = next().v;
        expect("=");
        mod.consts.push({ type: ty, name, value: value(), doc: t.doc });
        sep();
        break;
      }
      case "struct":
      case "exception":
      case "union": {
        const name = next().v;
        expect("{");
        const fields = [];
        while (peek().v !== "}") {
          const idTok = next();
          const fdoc = idTok.doc;
          expect(":");
          let req = "default";
          if (peek().v === "optional" || peek().v === "required") req = next().v;
          const ty = type();
          const fname = next().v;
          let def;
          if (peek().v === "=") {
            next();
            def = value();
          }
          sep();
          fields.push({ id: Number(idTok.v), req, type: ty, name: fname, def, doc: fdoc });
        }
        next();
        mod.structs.push({ name, fields, doc: t.doc });
        break;
      }
      case "service": {
        const name = next().v;
        if (peek().v === "extends") {
          next();
          next();
        }
        expect("{");
        const methods = [];
        while (peek().v !== "}") {
          const first = next();
          let ret;
          if (first.v === "oneway") ret = type();
          else {
            p--;
            ret = type();
          }
          const mname = next().v;
          expect("(");
          const args = [];
          while (peek().v !== ")") {
            const id = next().v;
            expect(":");
            if (peek().v === "optional" || peek().v === "required") next();
            const aty = type();
            const an = next().v;
            args.push({ id: Number(id), type: aty, name: an });
            sep();
          }
          next();
          if (peek() && peek().v === "throws") {
            next();
            expect("(");
            let depth = 1;
            while (depth > 0) {
              const x = next().v;
              if (x === "(") depth++;
              if (x === ")") depth--;
            }
          }
          sep();
          methods.push({ name: mname, ret, args, doc: first.doc });
        }
        next();
        mod.services.push({ name, methods, doc: t.doc });
        break;
      }
      case "typedef":
      case "enum":
        throw new Error(`${file}:${t.line}: ${t.v} is not supported by gen.mjs yet`);
      default:
        throw new Error(`${file}:${t.line}: unexpected ${t.v}`);
    }
  }
  return mod;
}

// --- emitter -------------------------------------------------------------

const camel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
const lowerFirst = (s) => s[0].toLowerCase() + s.slice(1);
const upperFirst = (s) => s[0].toUpperCase() + s.slice(1);
const BASE = new Set(["bool", "byte", "i8", "i16", "i32", "i64", "double", "string", "binary"]);

function tsType(t, init) {
  if (typeof t === "string") {
    switch (t) {
      case "bool":
        return "boolean";
      case "byte":
      case "i8":
      case "i16":
      case "i32":
      case "double":
        return "number";
      case "i64":
        return init ? "number | bigint" : "number";
      case "string":
        return "string";
      case "binary":
        return "Uint8Array";
      default:
        return init ? `${t}Init` : t;
    }
  }
  if (t.list) return `${tsType(t.list, init)}[]`;
  if (t.set) return `${tsType(t.set, init)}[]`;
  const [k, v] = t.map;
  if (k === "string") return `Record<string, ${tsType(v, init)}>`;
  return `Map<${tsType(k, init)}, ${tsType(v, init)}>`;
}

function specOf(t) {
  if (typeof t === "string") {
    if (t === "i8") return '"byte"';
    if (BASE.has(t)) return JSON.stringify(t);
    return `{ struct: () => ${t}$ }`;
  }
  if (t.list) return `{ list: ${specOf(t.list)} }`;
  if (t.set) return `{ set: ${specOf(t.set)} }`;
  return `{ map: [${specOf(t.map[0])}, ${specOf(t.map[1])}] }`;
}

function docBlock(doc, indent = "") {
  const lines = (doc || []).filter((l, i, a) => !(l === "" && (i === 0 || i === a.length - 1)));
  if (lines.length === 0) return "";
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l.replace(/\*\//g, "*\\/")}`.trimEnd()).join("\n")}\n${indent} */\n`;
}

function isPushed(s) {
  return (s.doc || []).some((l) => /\bpushed\b/i.test(l));
}

function emitModule(mod) {
  const ns = mod.namespace;
  let o = `// Code generated by scripts/gen.mjs from idl/${basename(mod.file)}. DO NOT EDIT.\n\n`;
  o += `import type { StructDesc } from "../compact.js";\n`;
  if (mod.services.length) o += `import type { Caller, CallOptions } from "../caller.js";\n`;
  o += "\n";
  for (const c of mod.consts) {
    o += docBlock(c.doc);
    o += `export const ${c.name} = ${c.value};\n`;
  }
  if (mod.consts.length) o += "\n";
  for (const s of mod.structs) {
    o += docBlock(s.doc);
    o += `export interface ${s.name} {\n`;
    for (const f of s.fields) {
      const opt = f.req === "optional" || (typeof f.type === "string" && !BASE.has(f.type));
      o += docBlock(f.doc, "  ");
      o += `  ${camel(f.name)}${opt ? "?" : ""}: ${tsType(f.type, false)};\n`;
    }
    o += "}\n\n";
    o += `/** ${s.name}Init is what a call takes for ${s.name}: unset fields are sent as their default (optional ones: not at all). */\n`;
    o += `export interface ${s.name}Init {\n`;
    for (const f of s.fields) o += `  ${camel(f.name)}?: ${tsType(f.type, true)};\n`;
    o += "}\n\n";
    o += `/** The descriptor of ${ns}.${s.name} for the compact codec. */\n`;
    o += `export const ${s.name}$: StructDesc = {\n  name: ${JSON.stringify(`${ns}.${s.name}`)},\n  fields: [\n`;
    // In id order: the order the Go encoder writes fields in.
    for (const f of [...s.fields].sort((a, b) => a.id - b.id)) {
      o += `    { id: ${f.id}, name: ${JSON.stringify(camel(f.name))}, wire: ${JSON.stringify(f.name)}, type: ${specOf(f.type)}, optional: ${f.req === "optional"}${f.def !== undefined ? `, def: ${f.def}` : ""} },\n`;
    }
    o += "  ],\n};\n\n";
  }
  for (const svc of mod.services) {
    o += docBlock(svc.doc);
    o += `export class ${svc.name}Client {\n  constructor(private readonly c: Caller) {}\n\n`;
    for (const m of svc.methods) {
      const full = `${ns}.${m.name}`;
      o += docBlock(m.doc, "  ");
      const a = m.args[0];
      if (m.args.length !== 1) throw new Error(`${mod.file}: ${full}: want exactly one argument`);
      if (a.type === "binary" && m.ret === "binary") {
        o += `  ${lowerFirst(m.name)}(payload: Uint8Array, opts?: CallOptions): Promise<Uint8Array> {\n`;
        o += `    return this.c.call(${JSON.stringify(full)}, payload, opts);\n  }\n\n`;
      } else {
        o += `  ${lowerFirst(m.name)}(req: ${a.type}Init = {}, opts?: CallOptions): Promise<${m.ret}> {\n`;
        o += `    return this.c.callStruct<${a.type}Init, ${m.ret}>(${JSON.stringify(full)}, ${a.type}$, req, ${m.ret}$, opts);\n  }\n\n`;
      }
    }
    o = o.trimEnd() + "\n}\n\n";
    o += `/** The methods of service ${svc.name}: request and reply descriptors (null: raw bytes). */\n`;
    o += `export const ${svc.name}Methods: Record<string, { req: StructDesc | null; reply: StructDesc | null }> = {\n`;
    for (const m of svc.methods) {
      const raw = m.args[0].type === "binary" && m.ret === "binary";
      o += `  ${JSON.stringify(`${ns}.${m.name}`)}: { req: ${raw ? "null" : `${m.args[0].type}$`}, reply: ${raw ? "null" : `${m.ret}$`} },\n`;
    }
    o += "};\n\n";
  }
  return o.trimEnd() + "\n";
}

function emitIndex(mods) {
  let o = `// Code generated by scripts/gen.mjs from idl/*.thrift. DO NOT EDIT.\n\n`;
  o += `import type { StructDesc } from "../compact.js";\n`;
  o += `import type { Caller, CallOptions } from "../caller.js";\n`;
  for (const m of mods) o += `import * as ${m.namespace} from "./${m.namespace}.js";\n`;
  o += `\nexport { ${mods.map((m) => m.namespace).join(", ")} };\n\n`;
  o += `/** Every client method of idl/*.thrift: "<service>.<Method>" -> its request and reply descriptors (null: raw bytes). */\n`;
  o += `export const methods: Record<string, { req: StructDesc | null; reply: StructDesc | null }> = {\n`;
  for (const m of mods) for (const s of m.services) o += `  ...${m.namespace}.${s.name}Methods,\n`;
  o += "};\n\n";
  o += `/** Every struct of idl/*.thrift by "<namespace>.<Struct>". */\n`;
  o += `export const structs: Record<string, StructDesc> = {\n`;
  for (const m of mods) for (const s of m.structs) o += `  ${JSON.stringify(`${m.namespace}.${s.name}`)}: ${m.namespace}.${s.name}$,\n`;
  o += "};\n\n";
  const pushed = [];
  for (const m of mods) for (const s of m.structs) if (isPushed(s)) pushed.push([m.namespace, s.name]);
  o += `/** The push events of idl/*.thrift: "@<type>" frames carry the struct of that name (structs whose doc says they are pushed). */\n`;
  o += `export interface PushEvents {\n`;
  for (const [ns, s] of pushed) o += `  ${JSON.stringify(`${ns}.${s}`)}: ${ns}.${s};\n`;
  o += "}\n\n";
  o += `/** The descriptor of each push event. */\n`;
  o += `export const pushEvents: Record<keyof PushEvents, StructDesc> = {\n`;
  for (const [ns, s] of pushed) o += `  ${JSON.stringify(`${ns}.${s}`)}: ${ns}.${s}$,\n`;
  o += "};\n\n";
  o += `/** ServiceClients has a typed client per service of idl/*.thrift (session.room.create(...)). */\n`;
  o += `export abstract class ServiceClients implements Caller {\n`;
  for (const m of mods) {
    for (const s of m.services) {
      const prop = m.services.length === 1 ? m.namespace : lowerFirst(s.name);
      o += `  /** Service ${s.name} of ${m.namespace}.thrift. */\n`;
      o += `  readonly ${prop} = new ${m.namespace}.${s.name}Client(this);\n`;
    }
  }
  o += `  abstract call(method: string, payload: Uint8Array, opts?: CallOptions): Promise<Uint8Array>;\n`;
  o += `  abstract callStruct<Req, Rep>(method: string, reqDesc: StructDesc, req: Req, repDesc: StructDesc, opts?: CallOptions): Promise<Rep>;\n`;
  o += "}\n";
  return o;
}

const files = readdirSync(idlDir)
  .filter((f) => f.endsWith(".thrift"))
  .sort();
const mods = files.map((f) => parse(readFileSync(join(idlDir, f), "utf8"), f));
mkdirSync(outDir, { recursive: true });
for (const m of mods) {
  writeFileSync(join(outDir, `${m.namespace}.ts`), emitModule(m));
  console.log(`gen ${join(outDir, m.namespace + ".ts")}: ${m.structs.length} structs, ${m.services.reduce((n, s) => n + s.methods.length, 0)} methods`);
}
writeFileSync(join(outDir, "index.ts"), emitIndex(mods));
console.log(`gen ${join(outDir, "index.ts")}`);
