#!/usr/bin/env node
'use strict';
/**
 * A Spaktok Live consumer outside Python (docs/events.md "Consuming"): reads event topics from the
 * beginning up to their end at start, validates every record against the published JSON Schemas,
 * and prints one JSON summary on stdout (records, invalid, gift revenue per stream).
 *
 *   node consumer.js --brokers 127.0.0.1:9092 [--topic spaktok.events.streams]... \
 *                    [--schemas ../../schemas/events] [--timeout-ms 60000]
 *
 * Exit status: 0 every record kept its contract, 2 some did not (see `errors`), 1 it could not
 * finish (broker unreachable, timeout). Logs go to stderr, so stdout is the summary alone.
 */
const path = require('node:path');
const { Kafka, logLevel } = require('kafkajs');
const { loadSchemas, newState, handleRecord } = require('./contracts');

function parseArgs(argv) {
  const options = { brokers: '127.0.0.1:9092', topics: [], schemas: null, timeoutMs: 60000 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--brokers') options.brokers = value;
    else if (flag === '--topic') options.topics.push(value);
    else if (flag === '--schemas') options.schemas = value;
    else if (flag === '--timeout-ms') options.timeoutMs = Number(value);
    else throw new Error(`unknown option ${flag} (see the comment at the top of consumer.js)`);
  }
  if (options.topics.length === 0) options.topics.push('spaktok.events.streams');
  options.schemas = options.schemas || path.join(__dirname, '..', '..', 'schemas', 'events');
  return options;
}

const toStderr = () => ({ level, log }) => {
  if (level <= logLevel.WARN) process.stderr.write(`kafkajs ${JSON.stringify(log)}\n`);
};

/** Where each partition ends now: the consumer stops once it has read up to there. */
async function endOffsets(kafka, topics) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const pending = new Map();
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (Number(p.high) > Number(p.low)) pending.set(`${topic}/${p.partition}`, Number(p.high) - 1);
      }
    }
    return pending;
  } finally {
    await admin.disconnect();
  }
}

async function consume(options) {
  const state = newState(options.topics, loadSchemas(options.schemas));
  const kafka = new Kafka({
    clientId: 'spaktok-node-consumer',
    brokers: options.brokers.split(','),
    logLevel: logLevel.WARN,
    logCreator: toStderr,
  });
  const pending = await endOffsets(kafka, options.topics);
  if (pending.size === 0) return { ...state.summary, complete: true };
  // a group of its own each run: no committed offsets to resume from, short timeouts because a
  // group join on the dev broker takes about half the session timeout (DESIGN §4)
  const consumer = kafka.consumer({
    groupId: `spaktok-node-consumer-${process.pid}-${Date.now()}`,
    sessionTimeout: 6000,
    rebalanceTimeout: 6000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 500,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: options.topics, fromBeginning: true });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not at the end after ${options.timeoutMs} ms`)), options.timeoutMs);
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ topic, partition, message }) => {
            handleRecord(state, { topic, partition, ...message });
            const slot = `${topic}/${partition}`;
            if (pending.has(slot) && Number(message.offset) >= pending.get(slot)) pending.delete(slot);
            if (pending.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
    return { ...state.summary, complete: true };
  } finally {
    await consumer.disconnect();
  }
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
  try {
    const summary = await consume(options);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return summary.invalid === 0 ? 0 : 2;
  } catch (err) {
    process.stderr.write(`spaktok-node-consumer: ${err.message}\n`);
    return 1;
  }
}

main().then((code) => process.exit(code));
