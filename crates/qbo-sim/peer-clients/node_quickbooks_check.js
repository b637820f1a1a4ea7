#!/usr/bin/env node
// Drive the real `node-quickbooks` client against qbo-sim.
//
// Only URLs are changed from a normal production setup, through the module-level constants
// node-quickbooks exposes for that purpose:
//   QuickBooks.V3_ENDPOINT_BASE_URL = `${base}/v3/company/`   (read in the constructor)
//   QuickBooks.TOKEN_URL            = `${base}/oauth2/v1/tokens/bearer`
//   QuickBooks.REVOKE_URL           = `${base}/v2/oauth2/tokens/revoke`
//
// Usage: NODE_PATH=/tmp/qbo-peer-node/node_modules node node_quickbooks_check.js --base-url http://127.0.0.1:PORT
// Exit status 0 when every check passed. See README.md next to this file.
'use strict';

const QuickBooks = require('node-quickbooks');

function arg(name, env, dflt) {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[env] || dflt;
}

const base = arg('--base-url', 'QBO_SIM_BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const clientId = arg('--client-id', 'QBO_SIM_CLIENT_ID', 'sim-client-id');
const clientSecret = arg('--client-secret', 'QBO_SIM_CLIENT_SECRET', 'sim-client-secret');
const realmId = arg('--realm-id', 'QBO_SIM_REALM_ID', '9130350000000001');
let refreshToken = arg('--refresh-token', 'QBO_SIM_REFRESH_TOKEN', null);

QuickBooks.V3_ENDPOINT_BASE_URL = base + '/v3/company/';
QuickBooks.TOKEN_URL = base + '/oauth2/v1/tokens/bearer';
QuickBooks.REVOKE_URL = base + '/v2/oauth2/tokens/revoke';

// node-quickbooks callbacks are (err, data[, res]); turn a method call into a promise.
function call(qbo, method, ...args) {
  return new Promise((resolve, reject) => {
    qbo[method](...args, (err, data) => (err ? reject(err) : resolve(data)));
  });
}

function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

function describe(err) {
  if (err && err.response) return `HTTP ${err.response.status} ${JSON.stringify(err.response.data)}`;
  if (err && err.Fault) return `Fault ${JSON.stringify(err.Fault)}`;
  if (err instanceof Error) return err.stack.split('\n').slice(0, 3).join('\n');
  return JSON.stringify(err);
}

const results = [];
async function check(name, fn) {
  try {
    const detail = await fn();
    results.push([name, true]);
    console.log(`PASS  ${name}${detail ? `  (${detail})` : ''}`);
  } catch (e) {
    results.push([name, false]);
    console.log(`FAIL  ${name}: ${describe(e)}`);
  }
}

const rows = (data, entity) => (data.QueryResponse && data.QueryResponse[entity]) || [];

async function main() {
  if (!refreshToken) {
    const r = await fetch(base + '/__admin/tokens/reconnect', { method: 'POST' });
    refreshToken = (await r.json()).refresh_token;
  }
  // A fresh OAuth2 client: no access token yet, only the refresh token.
  const qbo = new QuickBooks(
    clientId, clientSecret,
    null, // oauth token (access token) - obtained by refreshAccessToken
    false, // no token secret for OAuth 2.0
    realmId,
    false, // useSandbox
    false, // debug
    75, // minorversion
    '2.0', // oauth version
    refreshToken,
  );
  const state = {};

  await check('new QuickBooks(...) endpoint', async () => {
    expect(qbo.endpoint === base + '/v3/company/', `endpoint ${qbo.endpoint}`);
    return qbo.endpoint;
  });

  await check('refreshAccessToken()', async () => {
    const old = qbo.refreshToken;
    const tok = await call(qbo, 'refreshAccessToken');
    expect(tok.access_token && qbo.token === tok.access_token, 'access token not set');
    expect(tok.token_type === 'bearer' && tok.expires_in === 3600, JSON.stringify(tok));
    expect(qbo.refreshToken && qbo.refreshToken !== old, 'refresh token did not rotate');
    state.oldRefresh = old;
    return `rotated, x_refresh_token_expires_in=${tok.x_refresh_token_expires_in}`;
  });

  await check('refreshAccessToken() with a replaced token -> invalid_grant', async () => {
    const stale = new QuickBooks(clientId, clientSecret, null, false, realmId, false, false, 75, '2.0', state.oldRefresh);
    try {
      await call(stale, 'refreshAccessToken');
    } catch (e) {
      expect(e.response && e.response.status === 400, describe(e));
      expect(e.response.data.error === 'invalid_grant', describe(e));
      return `400 ${JSON.stringify(e.response.data)}`;
    }
    throw new Error('stale refresh token accepted');
  });

  await check('getCompanyInfo(realmId)', async () => {
    const ci = await call(qbo, 'getCompanyInfo', realmId);
    expect(ci.CompanyName && ci.Id === '1', JSON.stringify(ci).slice(0, 200));
    return `CompanyName=${JSON.stringify(ci.CompanyName)}`;
  });

  await check('getPreferences()', async () => {
    const p = await call(qbo, 'getPreferences');
    expect(p.Id === '1' && p.CurrencyPrefs, JSON.stringify(p).slice(0, 200));
    return 'ok';
  });

  await check('findCustomers() (no criteria)', async () => {
    const d = await call(qbo, 'findCustomers');
    const cs = rows(d, 'Customer');
    expect(cs.length > 0 && cs.every((c) => c.Active), `${cs.length} rows`);
    // No criteria: node-quickbooks sends a bare `select * from customer`, so QBO's default page
    // size (100) applies.
    expect(cs.length === 100, `${cs.length} rows`);
    expect(d.QueryResponse.startPosition === 1 && d.QueryResponse.maxResults === cs.length, 'envelope');
    state.activeFirst = cs.map((c) => c.Id);
    return `${cs.length} customers (QBO's default page size)`;
  });

  await check('findCustomers({count: true}) and with criteria', async () => {
    const d = await call(qbo, 'findCustomers', { count: true });
    const n = d.QueryResponse.totalCount;
    // Array form: the count flag is an element of its own ({count: true}).
    const all = (await call(qbo, 'findCustomers', [{ count: true }, { field: 'Active', value: [true, false], operator: 'IN' }])).QueryResponse.totalCount;
    expect(Number.isInteger(n) && n > 0 && all > n, `${n} / ${all}`);
    state.activeCount = n;
    return `${n} active of ${all}`;
  });

  await check('findCustomers({Active: false})', async () => {
    const cs = rows(await call(qbo, 'findCustomers', { Active: false }), 'Customer');
    expect(cs.length > 0 && cs.every((c) => !c.Active && c.DisplayName.endsWith(' (deleted)')), `${cs.length}`);
    return `${cs.length} inactive`;
  });

  await check('findCustomers({fetchAll: true, limit: 200})', async () => {
    const d = await call(qbo, 'findCustomers', { fetchAll: true, limit: 200 });
    const cs = rows(d, 'Customer');
    expect(cs.length === state.activeCount, `${cs.length} vs count ${state.activeCount}`);
    expect(new Set(cs.map((c) => c.Id)).size === cs.length, 'duplicates');
    expect(d.QueryResponse.maxResults === cs.length, `maxResults ${d.QueryResponse.maxResults}`);
    return `${cs.length} customers in ${Math.ceil((cs.length + 1) / 200)} requests`;
  });

  await check('findCustomers([... {field: fetchAll}]) array form', async () => {
    const d = await call(qbo, 'findCustomers', [
      { field: 'Active', value: [true, false], operator: 'IN' },
      { field: 'fetchAll', value: true },
      { field: 'limit', value: 400 },
    ]);
    const total = (await call(qbo, 'findCustomers', [{ count: true }, { field: 'Active', value: [true, false], operator: 'IN' }])).QueryResponse.totalCount;
    const cs = rows(d, 'Customer');
    expect(cs.length === total, `${cs.length} vs ${total}`);
    return `${cs.length} customers (active and inactive)`;
  });

  await check('findCustomers({limit, offset}) paging', async () => {
    const p1 = rows(await call(qbo, 'findCustomers', { limit: 5, offset: 1 }), 'Customer').map((c) => c.Id);
    const p2 = rows(await call(qbo, 'findCustomers', { limit: 5, offset: 6 }), 'Customer').map((c) => c.Id);
    expect(JSON.stringify(p1.concat(p2)) === JSON.stringify(state.activeFirst.slice(0, 10)), `${p1} ${p2}`);
    const past = await call(qbo, 'findCustomers', { limit: 5, offset: 100000 });
    expect(JSON.stringify(past.QueryResponse) === '{}', JSON.stringify(past.QueryResponse));
    return `${p1.join(',')} | ${p2.join(',')}; past the end -> {}`;
  });

  await check('findCustomers LIKE + desc', async () => {
    const d = await call(qbo, 'findCustomers', [
      { field: 'DisplayName', value: '%Bakery%', operator: 'LIKE' },
      { field: 'desc', value: 'DisplayName' },
    ]);
    const names = rows(d, 'Customer').map((c) => c.DisplayName);
    expect(names.length > 0 && names.every((n) => n.includes('Bakery')), `${names.length}`);
    // Case-insensitive, by code point (how the simulator collates; Intuit's collation of
    // non-ASCII letters is not documented).
    const key = (n) => Array.from(n.toLowerCase()).map((c) => c.codePointAt(0));
    const cmp = (a, b) => {
      const [x, y] = [key(a), key(b)];
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
      return x.length - y.length;
    };
    const sorted = [...names].sort((a, b) => cmp(b, a));
    expect(JSON.stringify(names) === JSON.stringify(sorted), names.slice(0, 4).join(' | '));
    return `${names.length} rows, first ${JSON.stringify(names[0])}`;
  });

  await check("findCustomers({DisplayName: \"…'…\"}) apostrophe", async () => {
    const cands = rows(await call(qbo, 'findCustomers', [{ field: 'DisplayName', value: "%'s Bird%", operator: 'LIKE' }]), 'Customer');
    expect(cands.length > 0, 'no candidates');
    const name = cands[0].DisplayName;
    const got = rows(await call(qbo, 'findCustomers', { DisplayName: name }), 'Customer');
    expect(got.length === 1 && got[0].Id === cands[0].Id, `${name} -> ${got.map((c) => c.Id)}`);
    return `${JSON.stringify(name)} -> Id ${got[0].Id}`;
  });

  await check('findCustomers("where ...") string criteria', async () => {
    const d = await call(qbo, 'findCustomers', "where Metadata.LastUpdatedTime >= '2026-01-20T00:00:00-08:00' orderby Metadata.LastUpdatedTime maxresults 25");
    const cs = rows(d, 'Customer');
    expect(cs.length === 25, `${cs.length}`);
    const t = cs.map((c) => Date.parse(c.MetaData.LastUpdatedTime));
    expect(t.every((x, i) => i === 0 || t[i - 1] <= x), 'not ordered');
    return `${cs.length} rows from ${cs[0].MetaData.LastUpdatedTime}`;
  });

  await check('getCustomer(id)', async () => {
    const id = state.activeFirst[2];
    const c = await call(qbo, 'getCustomer', id);
    expect(c.Id === id && c.DisplayName, JSON.stringify(c).slice(0, 200));
    return `Id ${id} -> ${JSON.stringify(c.DisplayName)}`;
  });

  await check('getCustomer(missing) -> Fault 610', async () => {
    try {
      await call(qbo, 'getCustomer', '99999999');
    } catch (e) {
      const f = (e.response && e.response.data && e.response.data.Fault) || e.Fault;
      expect(f && f.Error[0].code === '610', describe(e));
      return `HTTP ${e.response ? e.response.status : '200'} Fault ${f.Error[0].code} ${f.Error[0].Message}`;
    }
    throw new Error('no error');
  });

  await check('findItems() / getItem(id)', async () => {
    const items = rows(await call(qbo, 'findItems'), 'Item');
    expect(items.length > 0, 'no items');
    const it = await call(qbo, 'getItem', items[0].Id);
    expect(it.Name === items[0].Name, 'getItem');
    return `${items.length} items`;
  });

  await check('findInvoices(...) / getInvoice(id)', async () => {
    const all = rows(await call(qbo, 'findInvoices', { limit: 10 }), 'Invoice');
    expect(all.length === 10, `${all.length}`);
    const cust = all[0].CustomerRef.value;
    const mine = rows(await call(qbo, 'findInvoices', { CustomerRef: cust }), 'Invoice');
    expect(mine.length > 0 && mine.every((i) => i.CustomerRef.value === cust), `CustomerRef ${cust}`);
    const since = rows(await call(qbo, 'findInvoices', [
      { field: 'TxnDate', value: '2026-01-15', operator: '>=' },
      { field: 'TotalAmt', value: '100', operator: '>' },
      { field: 'fetchAll', value: true },
    ]), 'Invoice');
    expect(since.length > 0 && since.every((i) => i.TxnDate >= '2026-01-15' && i.TotalAmt > 100), `${since.length}`);
    const inv = await call(qbo, 'getInvoice', all[0].Id);
    expect(inv.Id === all[0].Id && inv.Line.length === all[0].Line.length, 'getInvoice');
    return `${mine.length} for customer ${cust}; ${since.length} since 2026-01-15 over $100`;
  });

  await check('changeDataCapture([Customer, Invoice], since)', async () => {
    const since = '2026-01-28T00:00:00-08:00';
    const d = await call(qbo, 'changeDataCapture', ['Customer', 'Invoice'], since);
    const [c, i] = d.CDCResponse[0].QueryResponse;
    const cnt = async (entity, extra) => (await call(qbo, `find${entity}s`, [
      { count: true },
      { field: 'Metadata.LastUpdatedTime', value: since, operator: '>=' },
      ...extra,
    ])).QueryResponse.totalCount;
    const wantC = await cnt('Customer', [{ field: 'Active', value: [true, false], operator: 'IN' }]);
    const wantI = await cnt('Invoice', []);
    expect(c.Customer.length === wantC && i.Invoice.length === wantI, `${c.Customer.length}/${wantC}, ${i.Invoice.length}/${wantI}`);
    expect(c.maxResults === c.Customer.length && c.startPosition === 1, 'envelope');
    return `${c.Customer.length} customers, ${i.Invoice.length} invoices`;
  });

  await check('findVendors() -> the active vendors; getVendor', async () => {
    const d = await call(qbo, 'findVendors');
    const vs = rows(d, 'Vendor');
    const n = (await call(qbo, 'findVendors', { count: true })).QueryResponse.totalCount;
    expect(vs.length > 0 && vs.length === n && vs.every((v) => v.Active), `${vs.length}/${n}`);
    const v = await call(qbo, 'getVendor', vs[0].Id);
    expect(v.DisplayName === vs[0].DisplayName, 'getVendor');
    return `${vs.length} active vendors`;
  });

  await check('bad query -> Fault 4000', async () => {
    try {
      await call(qbo, 'findCustomers', "where DisplayName = 'Cutlery 'R Us'");
    } catch (e) {
      const f = (e.response && e.response.data && e.response.data.Fault) || e.Fault;
      expect(f && f.Error[0].code === '4000', describe(e));
      return `HTTP ${e.response ? e.response.status : 200} ${f.Error[0].Message}`;
    }
    throw new Error('no error');
  });

  await check('expired access token -> 401, refreshAccessToken(), retry', async () => {
    await fetch(base + '/__admin/tokens/expire', { method: 'POST' });
    try {
      await call(qbo, 'getCustomer', state.activeFirst[0]);
      throw new Error('expired token accepted');
    } catch (e) {
      expect(e.response && e.response.status === 401, describe(e));
      expect(e.response.data.fault.error[0].code === '3200', describe(e));
    }
    await call(qbo, 'refreshAccessToken');
    const c = await call(qbo, 'getCustomer', state.activeFirst[0]);
    return `401 fault 3200, refreshed, Id ${c.Id} read`;
  });

  await check('revokeAccess(true) then refreshAccessToken() -> invalid_grant', async () => {
    const rt = qbo.refreshToken;
    await call(qbo, 'revokeAccess', true);
    expect(qbo.refreshToken === null, 'client did not clear tokens (status != 200)');
    qbo.refreshToken = rt;
    try {
      await call(qbo, 'refreshAccessToken');
    } catch (e) {
      expect(e.response && e.response.status === 400 && e.response.data.error === 'invalid_grant', describe(e));
      return `revoked; ${JSON.stringify(e.response.data)}`;
    }
    throw new Error('refresh after revoke succeeded');
  });

  const failed = results.filter(([, ok]) => !ok).map(([n]) => n);
  console.log(`\n${results.length - failed.length}/${results.length} checks passed`);
  failed.forEach((n) => console.log(`  failed: ${n}`));
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => {
  console.error(describe(e));
  process.exit(2);
});
