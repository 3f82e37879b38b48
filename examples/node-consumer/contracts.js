'use strict';
/**
 * The published contracts (schemas/events/*.json, JSON Schema 2020-12) as validators, and the fold
 * of validated records into a summary. No Kafka here: consumer.js feeds it records.
 *
 * A record value is one event envelope (JSON). The event topics never bundle; a JSON array value
 * (a bundle: command topics and spaktok.outcomes do that) is still taken apart member by member, so
 * pointing this at another topic reports what it holds instead of failing on the first record.
 */
const fs = require('node:fs');
const path = require('node:path');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

const TYPE_HEADER = 'event-type';
const MAX_ERRORS = 20;

/** Compile every schema file of `dir`: `<type>.v<N>.json` per event type and version, and `envelope.json`. */
function loadSchemas(dir) {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  const validators = new Map();
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const schema = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    validators.set(file, ajv.compile(schema));
  }
  if (!validators.has('envelope.json')) {
    throw new Error(`no envelope.json in ${dir}: point --schemas at the repository's schemas/events`);
  }
  return validators;
}

function newSummary(topics) {
  return {
    topics,
    records: 0,
    envelopes: 0,
    bundles: 0,
    invalid: 0,
    duplicates: 0,
    errors: [],
    types: {},
    revenue: {},
    gifts: {},
    revenueRecorded: {},
    complete: false,
  };
}

/** One Kafka record: validate each envelope it holds, then fold the valid, unseen ones. */
function handleRecord(state, { topic, partition, offset, key, value, headers }) {
  const { summary, validators, seen } = state;
  summary.records += 1;
  const where = `${topic}/${partition}@${offset}`;
  let parsed;
  try {
    parsed = JSON.parse(value ? value.toString('utf8') : '');
  } catch (err) {
    return invalid(summary, where, `not JSON: ${err.message}`);
  }
  const members = Array.isArray(parsed) ? parsed : [parsed];
  if (Array.isArray(parsed)) summary.bundles += 1;
  const headerType = headers && headers[TYPE_HEADER] ? headers[TYPE_HEADER].toString('utf8') : null;
  const keyText = key ? key.toString('utf8') : null;
  members.forEach((envelope, index) => {
    summary.envelopes += 1;
    const at = Array.isArray(parsed) ? `${where}[${index}]` : where;
    const problem = check(validators, envelope);
    if (problem) return invalid(summary, at, problem);
    if (!Array.isArray(parsed) && headerType !== envelope.type) {
      return invalid(summary, at, `header ${TYPE_HEADER}=${headerType} but type ${envelope.type}`);
    }
    if (index === 0 && keyText !== envelope.aggregate_id) {
      return invalid(summary, at, `key ${keyText} but aggregate_id ${envelope.aggregate_id}`);
    }
    if (seen.has(envelope.event_id)) {
      summary.duplicates += 1; // at-least-once delivery: the same event again, same id
      return undefined;
    }
    seen.add(envelope.event_id);
    fold(state, envelope);
    return undefined;
  });
  return undefined;
}

/** Why an envelope breaks its contract (null: it keeps it). */
function check(validators, envelope) {
  const envelopeValid = validators.get('envelope.json');
  if (!envelopeValid(envelope)) return `envelope: ${describe(envelopeValid.errors)}`;
  const name = `${envelope.type}.v${envelope.schema_version}.json`;
  const valid = validators.get(name);
  if (!valid) return `no published schema ${name}`;
  return valid(envelope) ? null : `${name}: ${describe(valid.errors)}`;
}

/** Gift revenue: a stream's coins are the sum of its GiftReceived `coin_cost` (each send once). */
function fold({ summary, lastGift }, envelope) {
  summary.types[envelope.type] = (summary.types[envelope.type] || 0) + 1;
  if (envelope.type !== 'streams.GiftReceived') return;
  const stream = envelope.aggregate_id;
  const { coin_cost: coins, count, gift_revenue: runningTotal } = envelope.payload;
  summary.revenue[stream] = (summary.revenue[stream] || 0) + coins;
  summary.gifts[stream] = (summary.gifts[stream] || 0) + count;
  // the event also carries the stream's total after it: the latest one must equal the sum
  if (!lastGift.has(stream) || lastGift.get(stream) < envelope.sequence) {
    lastGift.set(stream, envelope.sequence);
    summary.revenueRecorded[stream] = runningTotal;
  }
}

function invalid(summary, where, reason) {
  summary.invalid += 1;
  if (summary.errors.length < MAX_ERRORS) summary.errors.push(`${where}: ${reason}`);
  return undefined;
}

function describe(errors) {
  return (errors || []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}

function newState(topics, validators) {
  return { summary: newSummary(topics), validators, seen: new Set(), lastGift: new Map() };
}

module.exports = { loadSchemas, newState, handleRecord, check, TYPE_HEADER };
