// A real OpenID Provider for the SSO tests: the certified `oidc-provider` package on loopback.
//
//   node provider.js PORT            (or OP_PORT=PORT node provider.js)
//
// Environment (all optional):
//   OP_ISSUER             issuer (default http://127.0.0.1:PORT)
//   OP_CLIENT_ID, OP_CLIENT_SECRET, OP_REDIRECT_URIS (comma-separated)
//                         one client registered at start
//   OP_REGISTRATION_TOKEN initial access token for dynamic client registration (POST /reg);
//                         tests register one client per org with it
//
// Signing keys (RS256) are generated at start. Interaction: GET /interaction/:uid shows a login
// form with an `email` field; POSTing it signs that person in (any email is a test user; the
// optional field `email_verified=false` makes the OP say the address is unverified). Consent is
// granted automatically for the scopes and claims requested.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] || process.env.OP_PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node provider.js PORT');
  process.exit(2);
}
const issuer = process.env.OP_ISSUER || `http://127.0.0.1:${port}`;

const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: randomBytes(8).toString('hex'),
  alg: 'RS256',
  use: 'sig',
};

const clients = [];
if (process.env.OP_CLIENT_ID) {
  clients.push({
    client_id: process.env.OP_CLIENT_ID,
    client_secret: process.env.OP_CLIENT_SECRET,
    redirect_uris: (process.env.OP_REDIRECT_URIS || '').split(',').filter(Boolean),
    grant_types: ['authorization_code'],
    response_types: ['code'],
  });
}

// Test users, created by signing in: account id -> { email, verified }.
const accounts = new Map();

function accountFor(email, verified) {
  const normalized = email.trim().toLowerCase();
  const id = createHash('sha256').update(`${normalized}|${verified}`).digest('base64url').slice(0, 24);
  accounts.set(id, { email: email.trim(), verified });
  return id;
}

const configuration = {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Put the scope's claims in the ID token itself (what most enterprise IdPs do).
  conformIdTokenClaims: false,
  ttl: { AccessToken: 600, Grant: 3600, IdToken: 600, Interaction: 600, Session: 3600 },
  features: {
    devInteractions: { enabled: false },
    registration: {
      enabled: Boolean(process.env.OP_REGISTRATION_TOKEN),
      initialAccessToken: process.env.OP_REGISTRATION_TOKEN || false,
    },
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  async findAccount(ctx, id) {
    const account = accounts.get(id);
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: account.verified, name: account.email.split('@')[0] };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 65536) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function grantConsent(details) {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  if (prompt.details.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  return { consent: { grantId: await grant.save() } };
}

// The interaction pages, in front of the provider's own routes.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
  if (!match) return next();
  ctx.set('Cache-Control', 'no-store');
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (err) {
    ctx.status = 400;
    ctx.body = `interaction not found: ${err.message}`;
    return undefined;
  }
  const { uid, prompt } = details;
  let result;
  if (ctx.method === 'GET' && !match[2] && prompt.name === 'login') {
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>Sign in</title>
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Email <input type="email" name="email" required></label>
<button type="submit">Sign in</button>
</form>`;
    return undefined;
  }
  if (ctx.method === 'POST' && match[2] && prompt.name === 'login') {
    const form = await readForm(ctx.req);
    const email = (form.get('email') || '').trim();
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
      ctx.status = 400;
      ctx.body = 'email required';
      return undefined;
    }
    result = { login: { accountId: accountFor(email, form.get('email_verified') !== 'false') } };
  } else if (ctx.method === 'GET' && prompt.name === 'consent') {
    result = await grantConsent(details);
  } else {
    ctx.status = 400;
    ctx.body = `unexpected ${ctx.method} for prompt ${prompt.name}`;
    return undefined;
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: prompt.name === 'consent',
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
  return undefined;
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`openid provider ${issuer} listening on 127.0.0.1:${port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
