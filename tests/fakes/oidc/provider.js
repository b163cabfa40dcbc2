// A real OpenID Connect provider (the npm package oidc-provider) for the bot-first linking test.
// It stands in for the ESIA identity broker: authorisation code flow with PKCE, signed ID tokens,
// userinfo with the claims that carry the ESIA oid and SNILS. Listens on 127.0.0.1 only.
//
//   PORT=4010 OIDC_CLIENT_ID=dpo-bot OIDC_CLIENT_SECRET=secret \
//   OIDC_REDIRECT_URI=http://127.0.0.1:8080/link/callback \
//   OIDC_ACCOUNTS='{"teacher":{"esia_oid":"1000003","snils":"112-233-445 95"}}' node provider.js
//
// Any password signs in a login listed in OIDC_ACCOUNTS (the provider's development login
// form); the login becomes the subject. Prints "ready <issuer>" once it listens.
import Provider from "oidc-provider";

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || "{}");

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.OIDC_CLIENT_ID,
      client_secret: process.env.OIDC_CLIENT_SECRET,
      redirect_uris: [process.env.OIDC_REDIRECT_URI],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: { openid: ["sub", "esia_oid", "snils"] },
  pkce: { required: () => true },
  cookies: { keys: ["test-only-cookie-key"] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const claims = accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
});

// The development login form accepts any login; refuse logins that are not listed, as a real
// provider refuses unknown users.
provider.on("server_error", (ctx, error) => console.error("server_error", error));

provider.listen(port, "127.0.0.1", () => {
  console.log(`ready ${issuer}`);
});
