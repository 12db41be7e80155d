// The documented shape of each vendor credential the catalogue detects: a fixed prefix, a random body
// of a given length and alphabet, an optional suffix. The corpus draws fresh positives from these and
// near misses (body too short, a character outside the alphabet, a failing CRC). Written from the
// vendors' formats, not from the detectors' patterns, so that a pattern which disagrees with the
// format shows up as a miss.

export const alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export const hex = '0123456789abcdef';
const lowerAlnum = 'abcdefghijklmnopqrstuvwxyz0123456789';
const upperAlnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const b64url = alnum + '_-';
const b64 = alnum + '+/';
const digitChars = '0123456789';

/** One piece of a token: literal text, or `length` random characters of `alphabet` (`min` the shortest the format allows). */
export type Piece = string | { length: number; alphabet: string; min?: number };

export interface CredentialShape {
  pieces: Piece[];
  /** Context the detector needs (it is keyword-gated), put before the value. */
  label?: string;
  /** The body carries a CRC32 (GitHub, npm): near misses include one with a wrong checksum. */
  crc?: string;
  /** How the value usually travels: an environment variable, a config key. */
  env: string;
}

const r = (length: number, alphabet: string, min = length): Piece => ({ length, alphabet, min });
const uuidPieces = (): Piece[] => [r(8, hex), '-', r(4, hex), '-4', r(3, hex), '-a', r(3, hex), '-', r(12, hex)];

export const credentialShapes: Record<string, CredentialShape> = {
  'github-personal-access-token': { pieces: [], crc: 'ghp', env: 'GITHUB_TOKEN' },
  'github-oauth-token': { pieces: [], crc: 'gho', env: 'GH_OAUTH_TOKEN' },
  'github-user-to-server-token': { pieces: [], crc: 'ghu', env: 'GITHUB_APP_USER_TOKEN' },
  'github-server-to-server-token': { pieces: [], crc: 'ghs', env: 'GITHUB_INSTALLATION_TOKEN' },
  'github-refresh-token': { pieces: [], crc: 'ghr', env: 'GITHUB_REFRESH_TOKEN' },
  'npm-access-token': { pieces: [], crc: 'npm', env: 'NPM_TOKEN' },
  'github-fine-grained-token': { pieces: ['github_pat_', r(22, alnum), '_', r(59, alnum)], env: 'GH_PAT' },
  'gitlab-personal-access-token': { pieces: ['glpat-', r(20, b64url)], env: 'GITLAB_TOKEN' },
  'gitlab-runner-token': { pieces: ['glrt-', r(20, b64url)], env: 'RUNNER_TOKEN' },
  'gitlab-deploy-token': { pieces: ['gldt-', r(20, b64url)], env: 'CI_DEPLOY_PASSWORD' },
  'pypi-upload-token': { pieces: ['pypi-AgEIcHlwaS5vcmc', r(140, b64url, 50)], env: 'TWINE_PASSWORD' },
  'rubygems-api-key': { pieces: ['rubygems_', r(48, hex)], env: 'GEM_HOST_API_KEY' },
  'nuget-api-key': { pieces: ['oy2', r(43, lowerAlnum)], env: 'NUGET_API_KEY' },
  'clojars-token': { pieces: ['CLOJARS_', r(60, lowerAlnum)], env: 'CLOJARS_PASSWORD' },
  'docker-hub-pat': { pieces: ['dckr_pat_', r(27, b64url)], env: 'DOCKERHUB_TOKEN' },
  'aws-access-key-id': { pieces: ['AKIA', r(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')], env: 'AWS_ACCESS_KEY_ID' },
  'aws-secret-access-key': { pieces: [r(40, b64)], label: 'aws_secret_access_key = ', env: 'AWS_SECRET_ACCESS_KEY' },
  'aws-session-token': { pieces: ['IQoJb3JpZ2luX2Vj', r(300, b64, 100)], env: 'AWS_SESSION_TOKEN' },
  'google-api-key': { pieces: ['AIza', r(35, b64url)], env: 'GOOGLE_API_KEY' },
  'google-oauth-client-secret': { pieces: ['GOCSPX-', r(28, b64url)], env: 'GOOGLE_CLIENT_SECRET' },
  'google-oauth-access-token': { pieces: ['ya29.', r(150, b64url, 20)], env: 'GOOGLE_ACCESS_TOKEN' },
  'google-oauth-refresh-token': { pieces: ['1//0', r(100, b64url, 40)], env: 'GOOGLE_REFRESH_TOKEN' },
  'azure-ad-client-secret': { pieces: [r(3, alnum), r(1, digitChars), 'Q~', r(34, alnum + '_~.-', 31)], env: 'AZURE_CLIENT_SECRET' },
  'openai-api-key': { pieces: ['sk-', r(20, alnum), 'T3BlbkFJ', r(20, alnum)], env: 'OPENAI_API_KEY' },
  'anthropic-api-key': { pieces: ['sk-ant-api03-', r(93, b64url, 80), 'AA'], env: 'ANTHROPIC_API_KEY' },
  'huggingface-token': { pieces: ['hf_', r(34, letters)], env: 'HF_TOKEN' },
  'replicate-api-token': { pieces: ['r8_', r(37, alnum)], env: 'REPLICATE_API_TOKEN' },
  'groq-api-key': { pieces: ['gsk_', r(52, alnum)], env: 'GROQ_API_KEY' },
  'perplexity-api-key': { pieces: ['pplx-', r(48, alnum)], env: 'PERPLEXITY_API_KEY' },
  'slack-bot-token': { pieces: ['xoxb-', r(12, digitChars), '-', r(13, digitChars), '-', r(24, alnum)], env: 'SLACK_BOT_TOKEN' },
  'slack-user-token': { pieces: ['xoxp-', r(12, digitChars), '-', r(13, digitChars), '-', r(13, digitChars), '-', r(32, hex)], env: 'SLACK_USER_TOKEN' },
  'slack-app-token': { pieces: ['xapp-1-A', r(10, upperAlnum), '-', r(13, digitChars), '-', r(64, hex)], env: 'SLACK_APP_TOKEN' },
  'slack-legacy-token': { pieces: ['xoxs-', r(40, alnum, 20)], env: 'SLACK_LEGACY_TOKEN' },
  'discord-bot-token': { pieces: ['M', r(23, alnum), '.', r(6, b64url), '.', r(27, b64url)], env: 'DISCORD_BOT_TOKEN' },
  'telegram-bot-token': { pieces: [r(10, digitChars), ':AA', r(33, b64url)], env: 'TELEGRAM_BOT_TOKEN' },
  'stripe-secret-key': { pieces: ['sk_live_', r(99, alnum, 24)], env: 'STRIPE_SECRET_KEY' },
  'stripe-restricted-key': { pieces: ['rk_live_', r(99, alnum, 24)], env: 'STRIPE_RESTRICTED_KEY' },
  'stripe-webhook-secret': { pieces: ['whsec_', r(32, alnum)], env: 'STRIPE_WEBHOOK_SECRET' },
  'square-access-token': { pieces: ['EAAA', r(60, b64url)], env: 'SQUARE_ACCESS_TOKEN' },
  'square-oauth-secret': { pieces: ['sq0csp-', r(43, b64url)], env: 'SQUARE_APP_SECRET' },
  'braintree-access-token': { pieces: ['access_token$production$', r(16, lowerAlnum), '$', r(32, hex)], env: 'BRAINTREE_ACCESS_TOKEN' },
  'shopify-access-token': { pieces: ['shpat_', r(32, hex)], env: 'SHOPIFY_ACCESS_TOKEN' },
  'flutterwave-secret-key': { pieces: ['FLWSECK-', r(32, 'abcdefgh0123456789'), '-X'], env: 'FLW_SECRET_KEY' },
  'shippo-api-token': { pieces: ['shippo_live_', r(40, hex)], env: 'SHIPPO_API_TOKEN' },
  'easypost-api-key': { pieces: ['EZAK', r(54, alnum)], env: 'EASYPOST_API_KEY' },
  'duffel-api-token': { pieces: ['duffel_live_', r(43, b64url)], env: 'DUFFEL_ACCESS_TOKEN' },
  'twilio-api-key': { pieces: ['SK', r(32, hex)], label: 'twilio api key: ', env: 'TWILIO_API_KEY' },
  'sendgrid-api-key': { pieces: ['SG.', r(22, b64url), '.', r(43, b64url)], env: 'SENDGRID_API_KEY' },
  'mailgun-api-key': { pieces: ['key-', r(32, hex)], env: 'MAILGUN_API_KEY' },
  'mailchimp-api-key': { pieces: [r(32, hex), '-us', r(1, '123456789')], env: 'MAILCHIMP_API_KEY' },
  'brevo-api-key': { pieces: ['xkeysib-', r(64, hex), '-', r(16, alnum)], env: 'BREVO_API_KEY' },
  'postmark-server-token': { pieces: uuidPieces(), label: 'X-Postmark-Server-Token: ', env: 'POSTMARK_SERVER_TOKEN' },
  'digitalocean-token': { pieces: ['dop_v1_', r(64, hex)], env: 'DIGITALOCEAN_TOKEN' },
  'hashicorp-vault-token': { pieces: ['hvs.', r(91, b64url, 24)], env: 'VAULT_TOKEN' },
  'terraform-cloud-token': { pieces: [r(14, alnum), '.atlasv1.', r(67, b64url, 60)], env: 'TFE_TOKEN' },
  'pulumi-access-token': { pieces: ['pul-', r(40, hex)], env: 'PULUMI_ACCESS_TOKEN' },
  'doppler-token': { pieces: ['dp.st.', r(43, alnum, 40)], env: 'DOPPLER_TOKEN' },
  'atlassian-api-token': { pieces: ['ATATT3', r(186, b64url, 180)], env: 'JIRA_API_TOKEN' },
  'linear-api-key': { pieces: ['lin_api_', r(40, alnum)], env: 'LINEAR_API_KEY' },
  'notion-integration-token': { pieces: ['ntn_', r(11, digitChars), r(35, alnum)], env: 'NOTION_TOKEN' },
  'figma-personal-access-token': { pieces: ['figd_', r(40, b64url)], env: 'FIGMA_TOKEN' },
  'postman-api-key': { pieces: ['PMAK-', r(24, hex), '-', r(34, hex)], env: 'POSTMAN_API_KEY' },
  'databricks-token': { pieces: ['dapi', r(32, hex)], env: 'DATABRICKS_TOKEN' },
  'grafana-cloud-token': { pieces: ['glc_', r(120, alnum, 32)], env: 'GRAFANA_CLOUD_TOKEN' },
  'grafana-service-account-token': { pieces: ['glsa_', r(32, alnum), '_', r(8, hex)], env: 'GRAFANA_SA_TOKEN' },
  'new-relic-user-key': { pieces: ['NRAK-', r(27, upperAlnum)], env: 'NEW_RELIC_API_KEY' },
  'sentry-auth-token': { pieces: ['sntrys_', r(120, alnum, 50)], env: 'SENTRY_AUTH_TOKEN' },
  'datadog-api-key': { pieces: [r(32, hex)], label: 'DD_API_KEY=', env: 'DD_API_KEY' },
  'supabase-access-token': { pieces: ['sbp_', r(40, hex)], env: 'SUPABASE_ACCESS_TOKEN' },
  'planetscale-token': { pieces: ['pscale_tkn_', r(43, b64url + '.=', 32)], env: 'PLANETSCALE_SERVICE_TOKEN' },
  'airtable-pat': { pieces: ['pat', r(14, alnum), '.', r(64, hex)], env: 'AIRTABLE_TOKEN' },
  'contentful-pat': { pieces: ['CFPAT-', r(43, b64url)], env: 'CONTENTFUL_MANAGEMENT_TOKEN' },
  'typeform-pat': { pieces: ['tfp_', r(59, b64url + '.=')], env: 'TYPEFORM_TOKEN' },
  'mapbox-secret-token': { pieces: ['sk.eyJ', r(60, b64url, 20), '.', r(22, b64url, 20)], env: 'MAPBOX_SECRET_TOKEN' },
  'dropbox-access-token': { pieces: ['sl.', r(140, b64url, 130)], env: 'DROPBOX_ACCESS_TOKEN' },
  'prefect-api-key': { pieces: ['pnu_', r(36, alnum)], env: 'PREFECT_API_KEY' },
  'readme-api-key': { pieces: ['rdme_', r(70, lowerAlnum)], env: 'README_API_KEY' },
  'age-secret-key': { pieces: ['AGE-SECRET-KEY-1', r(58, 'QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L')], env: 'SOPS_AGE_KEY' },
  'twitter-bearer-token': { pieces: ['AAAAAAAAAAAAAAAAAAAAA', r(90, alnum, 30)], env: 'TWITTER_BEARER_TOKEN' },
  'facebook-access-token': { pieces: ['EAAG', r(160, alnum, 80)], env: 'FB_ACCESS_TOKEN' },
  'okta-api-token': { pieces: ['00', r(40, b64url)], label: 'Authorization: SSWS ', env: 'OKTA_API_TOKEN' },
  'heroku-api-key': { pieces: uuidPieces(), label: 'HEROKU_API_KEY=', env: 'HEROKU_API_KEY' },
  'cloudflare-api-token': { pieces: [r(40, alnum)], label: 'CLOUDFLARE_API_TOKEN=', env: 'CLOUDFLARE_API_TOKEN' },
};
