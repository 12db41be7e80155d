// Credentials and secrets by vendor. Structured tokens are matched by their
// documented prefix and shape; GitHub/npm tokens carry a CRC32 checksum we
// verify. Secrets without structure are keyword-gated and entropy-checked.
import { base62, basicAuthValid, crc32, jwtValid, looksRandom, prefixedCrc32TokenValid } from '../checksums.ts';
import type { ConfidenceModel, DetectorDefinition, DetectorValidation } from '../detector.ts';
import { hasDigitsAndLetters, looksLikePassword } from '../assignment.ts';

const vendorConfidence: ConfidenceModel = { base: 0.92, contextBoost: 0.06, negativePenalty: 0.15 };
const keyedConfidence: ConfidenceModel = { base: 0.8, contextBoost: 0.15, negativePenalty: 0.3 };

/** A synthetic example body of `n` characters drawn from `alphabet`, deterministic. */
export function syntheticBody(n: number, alphabet = 'aB3dE5fG7hJ9kLmN2pQ4rS6tU8vWxYz', seed = 7): string {
  let out = '';
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out += alphabet[x % alphabet.length];
  }
  return out;
}

const alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const hex = '0123456789abcdef';
const b64url = alnum + '_-';

/**
 * A token of fixed length whose alphabet has "-" may end in "-", where a closing \b fails (both sides
 * are non-word characters): the last character is then matched as a word character before a boundary,
 * or as "-". Ranged lengths need no change (the match gives up the trailing dashes only).
 */
export function tokenEndBoundary(pattern: string): string {
  return pattern.replace(/\[(0-9A-Za-z_|A-Za-z0-9_)-\]\{(\d+)\}(\)?)\\b$/, (_, cls: string, n: string, close: string) => `[${cls}-]{${Number(n) - 1}}(?:[${cls}]\\b|-)${close}`);
}

function vendor(
  id: string,
  description: string,
  pattern: string,
  example: string,
  extra: Partial<Omit<DetectorDefinition, 'validate' | 'validation'>> & DetectorValidation = {},
): DetectorDefinition {
  return {
    id,
    group: 'credentials',
    dataClass: 'credential',
    description,
    examples: [example],
    pattern: tokenEndBoundary(pattern),
    confidence: vendorConfidence,
    profiles: ['secrets', 'soc2'],
    maskKeep: 0,
    ...extra,
  };
}

/** A GitHub/npm style token with a valid CRC32 checksum (for examples and the corpus). */
export function checksummedToken(prefix: string, random30: string): string {
  return `${prefix}_${random30}${base62(crc32(random30), 6)}`;
}

const githubChecksum = { validate: prefixedCrc32TokenValid, validation: 'checksum', validationBoostsOnly: true } as const;
const ghRandom = syntheticBody(30, alnum, 11);

export const secretDetectors: DetectorDefinition[] = [
  vendor('github-personal-access-token', 'GitHub classic personal access token (ghp_, CRC32 checksum)', '\\bghp_[A-Za-z0-9]{36}\\b', checksummedToken('ghp', ghRandom), githubChecksum),
  vendor('github-oauth-token', 'GitHub OAuth access token (gho_, CRC32 checksum)', '\\bgho_[A-Za-z0-9]{36}\\b', checksummedToken('gho', ghRandom), githubChecksum),
  vendor('github-user-to-server-token', 'GitHub App user-to-server token (ghu_, CRC32 checksum)', '\\bghu_[A-Za-z0-9]{36}\\b', checksummedToken('ghu', ghRandom), githubChecksum),
  vendor('github-server-to-server-token', 'GitHub App installation token (ghs_, CRC32 checksum)', '\\bghs_[A-Za-z0-9]{36}\\b', checksummedToken('ghs', ghRandom), githubChecksum),
  vendor('github-refresh-token', 'GitHub App refresh token (ghr_, CRC32 checksum)', '\\bghr_[A-Za-z0-9]{36}\\b', checksummedToken('ghr', ghRandom), githubChecksum),
  vendor('github-fine-grained-token', 'GitHub fine-grained personal access token', '\\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\\b', `github_pat_${syntheticBody(22, alnum)}_${syntheticBody(59, alnum, 3)}`),
  vendor('gitlab-personal-access-token', 'GitLab personal access token', '\\bglpat-[A-Za-z0-9_-]{20,}\\b', `glpat-${syntheticBody(20, b64url)}`),
  vendor('gitlab-runner-token', 'GitLab runner authentication token', '\\bglrt-[A-Za-z0-9_-]{20,}\\b', `glrt-${syntheticBody(20, b64url)}`),
  vendor('gitlab-deploy-token', 'GitLab deploy token', '\\bgldt-[A-Za-z0-9_-]{20,}\\b', `gldt-${syntheticBody(20, b64url)}`),
  vendor('npm-access-token', 'npm access token (npm_, CRC32 checksum)', '\\bnpm_[A-Za-z0-9]{36}\\b', checksummedToken('npm', ghRandom), githubChecksum),
  vendor('pypi-upload-token', 'PyPI API token (macaroon)', '\\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}', `pypi-AgEIcHlwaS5vcmc${syntheticBody(60, b64url)}`),
  vendor('rubygems-api-key', 'RubyGems API key', '\\brubygems_[a-f0-9]{48}\\b', `rubygems_${syntheticBody(48, hex)}`),
  vendor('nuget-api-key', 'NuGet API key', '\\boy2[a-z0-9]{43}\\b', `oy2${syntheticBody(43, 'abcdefghijklmnopqrstuvwxyz0123456789')}`),
  vendor('clojars-token', 'Clojars deploy token', '\\bCLOJARS_[a-z0-9]{60}\\b', `CLOJARS_${syntheticBody(60, 'abcdefghijklmnopqrstuvwxyz0123456789')}`),
  vendor('docker-hub-pat', 'Docker Hub personal access token', '\\bdckr_pat_[A-Za-z0-9_-]{27}\\b', `dckr_pat_${syntheticBody(27, b64url)}`),
  vendor('aws-access-key-id', 'AWS access key ID (AKIA/ASIA...)', '\\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z2-7]{16}\\b', 'AKIAIOSFODNN7EXAMPLE'.replace('EXAMPLE', 'QWERTYU').slice(0, 20), { maskKeep: 4 }),
  {
    id: 'aws-secret-access-key',
    group: 'credentials',
    dataClass: 'credential',
    description: 'AWS secret access key (40 base64 characters) next to an AWS secret label, entropy-checked',
    examples: [`aws_secret_access_key = ${syntheticBody(40, alnum, 5)}`],
    // The whole run of key characters, exactly 40 of them: a key may begin or end with "+" or "/",
    // where \b would not hold.
    pattern: '[A-Za-z0-9/+]{40,}',
    keywords: ['aws_secret', 'secret_access_key', 'aws secret', 'secretaccesskey', 'aws_secret_access_key'],
    requiresContext: true,
    contextWindow: 32,
    validation: 'structure',
    validate: (c) => c.length === 40 && looksRandom(c, 4),
    confidence: keyedConfidence,
    profiles: ['secrets', 'soc2'],
    maskKeep: 0,
  },
  vendor('aws-session-token', 'AWS temporary session token (FwoGZXIvYXdzE / IQoJb3JpZ2lu prefix)', '\\b(?:FwoGZXIvYXdzE|IQoJb3JpZ2luX2Vj)[A-Za-z0-9/+=]{100,}', `IQoJb3JpZ2luX2Vj${syntheticBody(120, alnum + '/+')}`),
  vendor('google-api-key', 'Google API key', '\\bAIza[0-9A-Za-z_-]{35}\\b', `AIza${syntheticBody(35, b64url)}`),
  vendor('google-oauth-client-secret', 'Google OAuth client secret', '\\bGOCSPX-[A-Za-z0-9_-]{28}\\b', `GOCSPX-${syntheticBody(28, b64url)}`),
  vendor('google-oauth-access-token', 'Google OAuth access token (ya29.)', '\\bya29\\.[0-9A-Za-z_-]{20,}', `ya29.${syntheticBody(60, b64url)}`),
  vendor('google-oauth-refresh-token', 'Google OAuth refresh token (1//0)', '\\b1//0[0-9A-Za-z_-]{40,}', `1//0${syntheticBody(60, b64url)}`),
  vendor('gcp-service-account-key', 'GCP service account key file (private_key_id next to service_account type)', '"type"\\s{0,32}:\\s{0,32}"service_account"', '{"type": "service_account", "project_id": "x"}', { maskKeep: 0 }),
  vendor('azure-storage-connection-string', 'Azure Storage connection string with account key', 'AccountKey=[A-Za-z0-9+/]{86}==', `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${syntheticBody(86, alnum + '+/')}==`),
  vendor('azure-ad-client-secret', 'Microsoft Entra ID (Azure AD) client secret', '\\b[A-Za-z0-9_~.]{3}\\dQ~[A-Za-z0-9_~.-]{31,34}\\b', `abc8Q~${syntheticBody(34, alnum + '_~.-')}`),
  vendor('azure-sas-token', 'Azure shared access signature in a URL', '[?&]sv=\\d{4}-\\d{2}-\\d{2}&[^\\s"]*sig=[A-Za-z0-9%+/=]{40,}', `https://acct.blob.core.windows.net/c?sv=2022-11-02&ss=b&sig=${syntheticBody(44, alnum)}`),
  vendor('openai-api-key', 'OpenAI API key', '\\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}', `sk-proj-${syntheticBody(40, b64url)}T3BlbkFJ${syntheticBody(40, b64url, 9)}`),
  vendor('anthropic-api-key', 'Anthropic API key', '\\bsk-ant-(?:api|admin)\\d{2}-[A-Za-z0-9_-]{80,100}', `sk-ant-api03-${syntheticBody(93, b64url)}AA`),
  vendor('huggingface-token', 'Hugging Face access token', '\\bhf_[A-Za-z]{34}\\b', `hf_${syntheticBody(34, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz')}`),
  vendor('replicate-api-token', 'Replicate API token', '\\br8_[A-Za-z0-9]{37}\\b', `r8_${syntheticBody(37, alnum)}`),
  vendor('groq-api-key', 'Groq API key', '\\bgsk_[A-Za-z0-9]{52}\\b', `gsk_${syntheticBody(52, alnum)}`),
  vendor('perplexity-api-key', 'Perplexity API key', '\\bpplx-[A-Za-z0-9]{48}\\b', `pplx-${syntheticBody(48, alnum)}`),
  vendor('slack-bot-token', 'Slack bot token (xoxb-)', '\\bxoxb-\\d{10,13}-\\d{10,13}-[A-Za-z0-9]{24}\\b', `xoxb-1234567890123-1234567890123-${syntheticBody(24, alnum)}`),
  vendor('slack-user-token', 'Slack user token (xoxp-)', '\\bxoxp-\\d{10,13}-\\d{10,13}-\\d{10,13}-[a-f0-9]{32}\\b', `xoxp-1234567890123-1234567890123-1234567890123-${syntheticBody(32, hex)}`),
  vendor('slack-app-token', 'Slack app-level token (xapp-)', '\\bxapp-\\d-[A-Z0-9]{9,12}-\\d{10,13}-[a-f0-9]{64}\\b', `xapp-1-A0123456789-1234567890123-${syntheticBody(64, hex)}`),
  vendor('slack-legacy-token', 'Slack legacy or workspace token (xoxa-/xoxr-/xoxs-)', '\\bxox[ars]-[0-9A-Za-z-]{20,}', `xoxs-${syntheticBody(40, alnum)}`),
  vendor('slack-webhook-url', 'Slack incoming webhook URL', 'https://hooks\\.slack\\.com/(?:services|workflows)/[A-Za-z0-9+/]{20,}', `https://hooks.slack.com/services/T00000000/B00000000/${syntheticBody(24, alnum)}`),
  vendor('discord-webhook-url', 'Discord webhook URL', 'https://(?:ptb\\.|canary\\.)?discord(?:app)?\\.com/api/webhooks/\\d{17,20}/[A-Za-z0-9_-]{60,68}', `https://discord.com/api/webhooks/123456789012345678/${syntheticBody(68, b64url)}`),
  vendor('discord-bot-token', 'Discord bot token', '\\b[MN][A-Za-z0-9_-]{23,25}\\.[A-Za-z0-9_-]{6}\\.[A-Za-z0-9_-]{27,38}\\b', `M${syntheticBody(25, alnum)}.${syntheticBody(6, alnum)}.${syntheticBody(27, alnum)}`),
  vendor('telegram-bot-token', 'Telegram bot token', '\\b\\d{8,10}:AA[0-9A-Za-z_-]{33}\\b', `123456789:AA${syntheticBody(33, b64url)}`),
  vendor('microsoft-teams-webhook', 'Microsoft Teams incoming webhook URL', 'https://[a-z0-9-]{1,63}\\.webhook\\.office\\.com/webhookb2/[0-9a-f-]{36}@[0-9a-f-]{36}/IncomingWebhook/[0-9a-f]{32}/[0-9a-f-]{36}', `https://acme.webhook.office.com/webhookb2/${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}@${'1'.repeat(8)}-1111-1111-1111-${'1'.repeat(12)}/IncomingWebhook/${syntheticBody(32, hex)}/${'2'.repeat(8)}-2222-2222-2222-${'2'.repeat(12)}`),
  vendor('stripe-secret-key', 'Stripe secret key (sk_live_/sk_test_)', '\\bsk_(?:live|test)_[A-Za-z0-9]{24,99}\\b', `sk_live_${syntheticBody(24, alnum)}`),
  vendor('stripe-restricted-key', 'Stripe restricted key (rk_live_)', '\\brk_(?:live|test)_[A-Za-z0-9]{24,99}\\b', `rk_live_${syntheticBody(24, alnum)}`),
  vendor('stripe-webhook-secret', 'Stripe webhook signing secret', '\\bwhsec_[A-Za-z0-9]{32,}\\b', `whsec_${syntheticBody(32, alnum)}`),
  vendor('square-access-token', 'Square access token', '\\b(?:sq0atp-[0-9A-Za-z_-]{21}|EAAA[A-Za-z0-9_-]{59})(?:[A-Za-z0-9_]\\b|-)', `sq0atp-${syntheticBody(22, b64url)}`),
  vendor('square-oauth-secret', 'Square OAuth application secret', '\\bsq0csp-[0-9A-Za-z_-]{43}\\b', `sq0csp-${syntheticBody(43, b64url)}`),
  vendor('braintree-access-token', 'Braintree/PayPal access token', 'access_token\\$production\\$[0-9a-z]{16}\\$[0-9a-f]{32}', `access_token$production$${syntheticBody(16, 'abcdefghijklmnopqrstuvwxyz0123456789')}$${syntheticBody(32, hex)}`),
  vendor('shopify-access-token', 'Shopify access token (shpat_/shpca_/shppa_/shpss_)', '\\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\\b', `shpat_${syntheticBody(32, hex)}`),
  vendor('flutterwave-secret-key', 'Flutterwave secret key', '\\bFLWSECK(?:_TEST)?-[a-h0-9]{32}-X\\b', `FLWSECK-${syntheticBody(32, 'abcdefgh0123456789')}-X`),
  vendor('shippo-api-token', 'Shippo API token', '\\bshippo_(?:live|test)_[a-f0-9]{40}\\b', `shippo_live_${syntheticBody(40, hex)}`),
  vendor('easypost-api-key', 'EasyPost API key', '\\bEZ[AT]K[A-Za-z0-9]{54}\\b', `EZAK${syntheticBody(54, alnum)}`),
  vendor('duffel-api-token', 'Duffel API token', '\\bduffel_(?:test|live)_[A-Za-z0-9_=-]{43}', `duffel_live_${syntheticBody(43, b64url)}`),
  vendor('twilio-api-key', 'Twilio API key SID (SK + 32 hex) next to a Twilio label', '\\bSK[0-9a-fA-F]{32}\\b', `twilio key SK${syntheticBody(32, hex)}`, { keywords: ['twilio'], requiresContext: true, contextWindow: 32 }),
  vendor('sendgrid-api-key', 'SendGrid API key', '\\bSG\\.[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}\\b', `SG.${syntheticBody(22, b64url)}.${syntheticBody(43, b64url)}`),
  vendor('mailgun-api-key', 'Mailgun API key', '\\bkey-[0-9a-f]{32}\\b', `key-${syntheticBody(32, hex)}`),
  vendor('mailchimp-api-key', 'Mailchimp API key', '\\b[0-9a-f]{32}-us\\d{1,2}\\b', `${syntheticBody(32, hex)}-us14`),
  vendor('brevo-api-key', 'Brevo (Sendinblue) API key', '\\bxkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}\\b', `xkeysib-${syntheticBody(64, hex)}-${syntheticBody(16, alnum)}`),
  vendor('postmark-server-token', 'Postmark server token next to a Postmark label', '\\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\b', 'X-Postmark-Server-Token: 1b2c3d4e-1a2b-4c3d-8e9f-1a2b3c4d5e6f', { keywords: ['postmark'], requiresContext: true, contextWindow: 32, confidence: keyedConfidence }),
  vendor('digitalocean-token', 'DigitalOcean personal access / OAuth / refresh token', '\\bdo[opr]_v1_[a-f0-9]{64}\\b', `dop_v1_${syntheticBody(64, hex)}`),
  vendor('hashicorp-vault-token', 'HashiCorp Vault service or batch token', '\\bhv[sb]\\.[A-Za-z0-9_-]{24,}', `hvs.${syntheticBody(90, b64url)}`),
  vendor('terraform-cloud-token', 'Terraform Cloud / Enterprise API token', '\\b[A-Za-z0-9]{14}\\.atlasv1\\.[A-Za-z0-9_=-]{60,70}\\b', `${syntheticBody(14, alnum)}.atlasv1.${syntheticBody(67, b64url)}`),
  vendor('pulumi-access-token', 'Pulumi access token', '\\bpul-[a-f0-9]{40}\\b', `pul-${syntheticBody(40, hex)}`),
  vendor('doppler-token', 'Doppler service/personal token', '\\bdp\\.(?:pt|st|sa|ct|scim|audit)\\.[A-Za-z0-9]{40,44}\\b', `dp.pt.${syntheticBody(43, alnum)}`),
  vendor('atlassian-api-token', 'Atlassian API token', '\\bATATT3[A-Za-z0-9_=-]{180,}', `ATATT3${syntheticBody(186, b64url)}`),
  vendor('linear-api-key', 'Linear API key', '\\blin_api_[A-Za-z0-9]{40}\\b', `lin_api_${syntheticBody(40, alnum)}`),
  vendor('notion-integration-token', 'Notion integration token', '\\b(?:secret_[A-Za-z0-9]{43}|ntn_\\d{11}[A-Za-z0-9]{35})\\b', `ntn_12345678901${syntheticBody(35, alnum)}`),
  vendor('figma-personal-access-token', 'Figma personal access token', '\\bfigd_[A-Za-z0-9_-]{40}\\b', `figd_${syntheticBody(40, b64url)}`),
  vendor('postman-api-key', 'Postman API key', '\\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\\b', `PMAK-${syntheticBody(24, hex)}-${syntheticBody(34, hex)}`),
  vendor('databricks-token', 'Databricks personal access token', '\\bdapi[a-f0-9]{32}(?:-\\d)?\\b', `dapi${syntheticBody(32, hex)}`),
  vendor('grafana-cloud-token', 'Grafana Cloud API token', '\\bglc_[A-Za-z0-9+/]{32,400}={0,2}', `glc_${syntheticBody(60, alnum)}`),
  vendor('grafana-service-account-token', 'Grafana service account token', '\\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\\b', `glsa_${syntheticBody(32, alnum)}_${syntheticBody(8, hex)}`),
  vendor('new-relic-user-key', 'New Relic user API key', '\\bNRAK-[A-Z0-9]{27}\\b', `NRAK-${syntheticBody(27, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789')}`),
  vendor('sentry-auth-token', 'Sentry auth token', '\\bsntry[su]_[A-Za-z0-9+/=_-]{50,}', `sntrys_${syntheticBody(80, alnum)}`),
  vendor('datadog-api-key', 'Datadog API key (32 hex) next to a Datadog label', '\\b[a-f0-9]{32}\\b', `DD_API_KEY=${syntheticBody(32, hex)}`, { keywords: ['datadog', 'dd_api_key', 'dd-api-key', 'dd_app_key'], requiresContext: true, contextWindow: 24, confidence: keyedConfidence }),
  vendor('supabase-access-token', 'Supabase management access token', '\\bsbp_[a-f0-9]{40}\\b', `sbp_${syntheticBody(40, hex)}`),
  vendor('planetscale-token', 'PlanetScale service token or password', '\\bpscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.=-]{32,64}\\b', `pscale_tkn_${syntheticBody(43, b64url)}`),
  vendor('airtable-pat', 'Airtable personal access token', '\\bpat[A-Za-z0-9]{14}\\.[a-f0-9]{64}\\b', `pat${syntheticBody(14, alnum)}.${syntheticBody(64, hex)}`),
  vendor('contentful-pat', 'Contentful personal access token', '\\bCFPAT-[A-Za-z0-9_-]{43}\\b', `CFPAT-${syntheticBody(43, b64url)}`),
  vendor('typeform-pat', 'Typeform personal access token', '\\btfp_[A-Za-z0-9_.=-]{59}', `tfp_${syntheticBody(59, b64url)}`),
  vendor('mapbox-secret-token', 'Mapbox secret access token', '\\bsk\\.eyJ[A-Za-z0-9_-]{20,}\\.[A-Za-z0-9_-]{20,}', `sk.eyJ${syntheticBody(60, b64url)}.${syntheticBody(22, b64url)}`),
  vendor('dropbox-access-token', 'Dropbox short-lived access token', '\\bsl\\.[A-Za-z0-9_-]{130,}', `sl.${syntheticBody(140, b64url)}`),
  vendor('prefect-api-key', 'Prefect API key', '\\bpnu_[A-Za-z0-9]{36}\\b', `pnu_${syntheticBody(36, alnum)}`),
  vendor('readme-api-key', 'ReadMe API key', '\\brdme_[a-z0-9]{70}\\b', `rdme_${syntheticBody(70, 'abcdefghijklmnopqrstuvwxyz0123456789')}`),
  vendor('age-secret-key', 'age encryption secret key', '\\bAGE-SECRET-KEY-1[0-9A-Z]{58}\\b', `AGE-SECRET-KEY-1${syntheticBody(58, 'QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L')}`),
  vendor('twitter-bearer-token', 'X/Twitter app bearer token', '\\bAAAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{30,}', `AAAAAAAAAAAAAAAAAAAAA${syntheticBody(80, alnum)}`),
  vendor('facebook-access-token', 'Facebook/Meta access token', '\\bEAA[A-Z][A-Za-z0-9]{80,}', `EAAB${syntheticBody(100, alnum)}`),
  vendor('okta-api-token', 'Okta API token next to an Okta label', '\\b00[A-Za-z0-9_-]{40}\\b', `okta token 00${syntheticBody(40, b64url)}`, { keywords: ['okta', 'ssws'], requiresContext: true, contextWindow: 32, confidence: keyedConfidence }),
  vendor('heroku-api-key', 'Heroku API key next to a Heroku label', '\\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\\b', `HEROKU_API_KEY=01234567-89ab-4def-8123-456789abcdef`, { keywords: ['heroku'], requiresContext: true, contextWindow: 24, confidence: keyedConfidence }),
  vendor('cloudflare-api-token', 'Cloudflare API token (40 chars) next to a Cloudflare label', '\\b[A-Za-z0-9_-]{40}\\b', `CLOUDFLARE_API_TOKEN=${syntheticBody(40, alnum)}`, { keywords: ['cloudflare', 'cf_api_token', 'cf-api-token'], requiresContext: true, contextWindow: 24, validation: 'structure', validate: (c) => looksRandom(c), confidence: keyedConfidence }),
  vendor('private-key-block', 'PEM private key block (RSA, EC, DSA, OpenSSH, PGP, PKCS#8)', '-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----', '-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----', { confidence: { base: 0.98, contextBoost: 0.01, negativePenalty: 0.1 }, wholeBlock: true }),
  vendor('putty-private-key', 'PuTTY private key file', 'PuTTY-User-Key-File-\\d: ', 'PuTTY-User-Key-File-3: ssh-ed25519', { wholeBlock: true }),
  vendor('json-web-token', 'JSON Web Token (header and payload decoded and checked)', '\\beyJ[A-Za-z0-9_-]{5,}\\.eyJ[A-Za-z0-9_-]{5,}\\.[A-Za-z0-9_-]{0,}', `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sub":"1234567890","name":"Jane"}').toString('base64url')}.${syntheticBody(43, b64url)}`, { validation: 'structure', validate: jwtValid, confidence: { base: 0.85, contextBoost: 0.1, negativePenalty: 0.2 } }),
  vendor('url-embedded-credentials', 'URL with user:password credentials (database and service URLs)', '\\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\\s:@/"\']{1,64}:[^\\s@/"\']{1,128}@[A-Za-z0-9.-]+', 'postgres://app:S3cr3tPa55@db.internal:5432/app'),
  vendor('url-token-parameter', 'URL query parameter carrying a token or key', '[?&](?:access_token|api_key|apikey|token|auth|password|client_secret|sig|signature|key)=[A-Za-z0-9%._~+/-]{16,}', 'https://api.example.com/v1/items?api_key=Zx81kd0s9Qm3Lp7Vn2Tc', { confidence: { base: 0.75, contextBoost: 0.15, negativePenalty: 0.3 } }),
  vendor('http-basic-auth-header', 'HTTP Basic Authorization credentials (decodes to user:password)', '\\bBasic [A-Za-z0-9+/]{8,}={0,2}', `Authorization: Basic ${Buffer.from('admin:hunter22').toString('base64')}`, { validation: 'structure', validate: basicAuthValid }),
  vendor('http-bearer-token', 'HTTP Bearer token in an Authorization value', '\\b[Bb]earer [A-Za-z0-9._~+/-]{20,}=*', `Authorization: Bearer ${syntheticBody(40, alnum)}`, { validation: 'structure', validate: (c) => looksRandom(c.slice(7), 3.2), confidence: { base: 0.85, contextBoost: 0.1, negativePenalty: 0.3 } }),
  {
    id: 'password-field',
    group: 'credentials',
    dataClass: 'credential',
    description: 'Value of a field or assignment named password / passwd / secret / passphrase',
    examples: ['{"password": "correct horse battery staple"}', 'password=Tr0ub4dor&3'],
    pattern: '[^\\s"\',;&]{4,128}',
    keywords: ['password', 'passwd', 'pwd', 'passphrase', 'db_pass', 'client_secret', 'secret_key'],
    requiresContext: true,
    contextWindow: 4,
    wholeValueWhenKeyMatches: true,
    assignment: { weakLink: looksLikePassword },
    confidence: { base: 0.85, contextBoost: 0.1, negativePenalty: 0.5 },
    negativeKeywords: ['reset', 'forgot', 'policy', 'expired', 'required', 'change'],
    profiles: ['secrets', 'soc2'],
    maskKeep: 0,
  },
  {
    id: 'generic-api-key',
    group: 'credentials',
    dataClass: 'credential',
    description: 'High-entropy value (16+ chars, mixed classes, >= 3.5 bits/char) next to an api key / token / secret label',
    examples: [`api_key: ${syntheticBody(32, alnum, 21)}`],
    pattern: '[A-Za-z0-9+/=_.~-]{16,200}',
    keywords: ['api_key', 'apikey', 'api-key', 'access_token', 'auth_token', 'secret', 'token', 'private_key', 'x-api-key', 'credential'],
    requiresContext: true,
    contextWindow: 24,
    wholeValueWhenKeyMatches: true,
    assignment: { weakLink: hasDigitsAndLetters },
    validation: 'structure',
    validate: (c) => looksRandom(c),
    confidence: { base: 0.7, contextBoost: 0.2, negativePenalty: 0.4 },
    negativeKeywords: ['example', 'placeholder', 'your_', 'xxxx'],
    profiles: ['secrets', 'soc2'],
    maskKeep: 0,
  },
];
