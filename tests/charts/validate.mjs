// Validate Kubernetes manifests offline against the OpenAPI schemas that the npm package
// kubernetes-models bundles (one package version per Kubernetes version), and reject
// fields the schema does not know (the package's own check lets them through, as the API
// server's lenient decoding would drop them silently).
//
//   node validate.mjs MODELS_DIR FILE.yaml...
//   node validate.mjs MODELS_DIR --json FILE.yaml...   (the documents as one JSON array)
//
// MODELS_DIR is an installed kubernetes-models (e.g. node_modules/k8s-1.23). Each document
// is looked up as MODELS_DIR/<group>/<version>/<Kind>; monitoring.coreos.com kinds come
// from @kubernetes-models/prometheus-operator. Prints one line per document; exits 1 if any
// is invalid or of an unknown kind.
//
// Unknown fields: the package validates with JSON-schema code that reads each property
// the schema names (data.prop) and enumerates the keys only of maps (additionalProperties).
// The check runs the package's validation on a proxy of the document that records those
// reads; a key never read, in an object never enumerated, is not in the schema.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

// Packages resolve from the installation that holds MODELS_DIR (its node_modules).
const modelsArg = path.resolve(process.argv[2] || ".");
const require = createRequire(path.join(path.dirname(path.dirname(modelsArg)), "package.json"));
const YAML = require("yaml");

function track(value, where, seen) {
  if (value === null || typeof value !== "object") return value;
  let rec = seen.get(value);
  if (!rec) {
    rec = { where, read: new Set(), enumerated: false, value };
    seen.set(value, rec);
  }
  return new Proxy(value, {
    get(t, k, r) {
      if (typeof k === "string") rec.read.add(k);
      const v = Reflect.get(t, k, r);
      if (typeof k === "string" && v !== null && typeof v === "object")
        return track(v, where + "/" + k, seen);
      return v;
    },
    has(t, k) {
      if (typeof k === "string") rec.read.add(k);
      return Reflect.has(t, k);
    },
    ownKeys(t) {
      rec.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

async function modelFor(modelsDir, doc) {
  const [group, version] = doc.apiVersion.includes("/")
    ? doc.apiVersion.split("/")
    : ["", doc.apiVersion];
  let base = modelsDir;
  if (group.endsWith("monitoring.coreos.com"))
    base = path.join(path.dirname(require.resolve("@kubernetes-models/prometheus-operator/package.json")));
  const rel = path.join(group, version, doc.kind);
  for (const ext of [".mjs", ".js"]) {
    const f = path.join(base, rel + ext);
    if (fs.existsSync(f)) {
      const m = await import(pathToFileURL(f).href);
      return m[doc.kind];
    }
  }
  return null;
}

function unknownFields(model, data) {
  const seen = new Map();
  const inst = new model(data);
  const proxy = track(inst, "", seen);
  model.prototype.validate.call(proxy);
  const out = [];
  for (const rec of seen.values()) {
    if (Array.isArray(rec.value) || rec.enumerated) continue;
    for (const k of Object.keys(rec.value))
      if (!rec.read.has(k)) out.push(rec.where + "/" + k);
  }
  return out.sort();
}

async function main() {
  const [modelsDir, ...files] = process.argv.slice(2);
  if (files[0] === "--json") {
    // Print the documents of the files as one JSON array (for the tests' assertions).
    const out = [];
    for (const f of files.slice(1))
      for (const d of YAML.parseAllDocuments(fs.readFileSync(f, "utf8")))
        if (d.toJSON()) out.push(d.toJSON());
    console.log(JSON.stringify(out));
    return;
  }
  let bad = 0, n = 0;
  for (const file of files) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
    for (const d of docs) {
      const doc = d.toJSON();
      if (!doc) continue;
      n++;
      const name = `${path.basename(file)}: ${doc.kind} ${doc.metadata && doc.metadata.name}`;
      const model = await modelFor(modelsDir, doc);
      if (!model) {
        console.log(`INVALID ${name}: no schema for ${doc.apiVersion} ${doc.kind}`);
        bad++;
        continue;
      }
      try {
        new model(doc).validate();
      } catch (e) {
        console.log(`INVALID ${name}: ${e.message}`);
        bad++;
        continue;
      }
      const unknown = unknownFields(model, doc);
      if (unknown.length) {
        console.log(`INVALID ${name}: unknown field(s) ${unknown.join(", ")}`);
        bad++;
        continue;
      }
      console.log(`valid ${name}`);
    }
  }
  console.log(`${n} documents, ${bad} invalid`);
  process.exit(bad || !n ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
