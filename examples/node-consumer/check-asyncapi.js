#!/usr/bin/env node
'use strict';
/**
 * Validates an AsyncAPI document with the AsyncAPI initiative's own parser (schema and rules), so
 * that schemas/asyncapi.json is a document other AsyncAPI tools accept, not only one that looks
 * like one. Prints each diagnostic; exit status 1 on any error.
 *
 *   node check-asyncapi.js ../../schemas/asyncapi.json
 */
const fs = require('node:fs');
const { Parser } = require('@asyncapi/parser');

const SEVERITY = ['error', 'warning', 'info', 'hint'];

async function main(file) {
  const { document, diagnostics } = await new Parser().parse(fs.readFileSync(file, 'utf8'));
  for (const d of diagnostics) {
    process.stdout.write(`${SEVERITY[d.severity]} ${d.code} ${d.message} at ${JSON.stringify(d.path)}\n`);
  }
  const errors = diagnostics.filter((d) => d.severity === 0).length;
  process.stdout.write(`${document && errors === 0 ? 'valid' : 'invalid'} AsyncAPI document: ${file}\n`);
  return document && errors === 0 ? 0 : 1;
}

main(process.argv[2] || `${__dirname}/../../schemas/asyncapi.json`).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  },
);
