// Runs hoist's generated CloudFront Functions as CloudFront calls them, under Node.js.
//
//   node cloudfront-functions.mjs DIR < cases.json > results.json
//
// DIR is what `hoist edge build --out DIR` wrote. Each case is {uri, query, headers}; the
// viewer-request function gets CloudFront's event object (querystring and headers as
// {name: {value, multiValue?}}, names lower-case), and `import cf from 'cloudfront'` gets a
// KeyValueStore emulation over DIR/kvs.json whose get() throws for a missing key, as
// CloudFront's does. A request the function passes on goes through viewer-response.js (when
// there is one) with a 200 from the origin. Each result is {status, location} or {uri,
// headers}; the code sizes and the number of KeyValueStore reads come with them.
import { readFileSync, existsSync } from 'node:fs';

const dir = process.argv[2];
const cases = JSON.parse(readFileSync(0, 'utf8'));
const data = new Map();
if (existsSync(`${dir}/kvs.json`)) {
  for (const { key, value } of JSON.parse(readFileSync(`${dir}/kvs.json`, 'utf8')).data) {
    data.set(key, value);
  }
}
let reads = 0;
const cf = {
  kvs() {
    return {
      async get(key) {
        reads += 1;
        if (!data.has(key)) throw new Error(`The key ${key} does not exist`);
        return data.get(key);
      },
      async exists(key) {
        reads += 1;
        return data.has(key);
      },
    };
  },
};

function load(name) {
  const path = `${dir}/${name}`;
  if (!existsSync(path)) return { handler: null, size: 0 };
  const code = readFileSync(path, 'utf8');
  // A module whose only import is CloudFront's; the handler is a top-level function.
  const body = code.replace(/^import cf from 'cloudfront';$/m, '');
  if (/^\s*import /m.test(body)) throw new Error(`${name} imports something besides cloudfront`);
  return { handler: new Function('cf', `${body}\nreturn handler;`)(cf), size: Buffer.byteLength(code) };
}

function querystring(text) {
  const out = {};
  if (!text) return out;
  for (const part of text.split('&')) {
    const at = part.indexOf('=');
    const name = at < 0 ? part : part.slice(0, at);
    const value = at < 0 ? '' : part.slice(at + 1);
    if (out[name]) {
      out[name].multiValue = out[name].multiValue || [{ value: out[name].value }];
      out[name].multiValue.push({ value });
    } else {
      out[name] = { value };
    }
  }
  return out;
}

function headers(object) {
  const out = {};
  for (const [name, value] of Object.entries(object || {})) out[name.toLowerCase()] = { value };
  return out;
}

const request = load('viewer-request.js');
const response = load('viewer-response.js');
const results = [];
for (const c of cases) {
  const event = {
    version: '1.0',
    context: { eventType: 'viewer-request' },
    viewer: { ip: '192.0.2.1' },
    request: { method: 'GET', uri: c.uri, querystring: querystring(c.query), headers: headers(c.headers), cookies: {} },
  };
  const out = await request.handler(event);
  if (out.statusCode) {
    results.push({ status: out.statusCode, description: out.statusDescription, location: out.headers.location.value });
    continue;
  }
  const result = { uri: out.uri };
  if (response.handler) {
    const res = response.handler({
      version: '1.0',
      context: { eventType: 'viewer-response' },
      viewer: { ip: '192.0.2.1' },
      request: out,
      response: { statusCode: 200, statusDescription: 'OK', headers: { 'content-type': { value: 'text/html' } }, cookies: {} },
    });
    result.headers = Object.fromEntries(Object.entries(res.headers).map(([n, v]) => [n, v.value]));
  }
  results.push(result);
}
process.stdout.write(JSON.stringify({ results, sizes: { request: request.size, response: response.size }, reads }));
