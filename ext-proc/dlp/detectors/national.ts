// National, tax and company identifiers of ~90 countries, validated by the
// stdnum library's check algorithms (most have a check digit; some only a format). These numbers have no distinctive shape
// (a run of digits), so every one is keyword-gated: it counts only next to its
// own name (CPF, PESEL, BSN, NINO...) in the text or in the JSON field name.
import { stdnum } from 'stdnum';
import type { DetectorDefinition, DetectorGroup, ValidationKind } from '../detector.ts';
import { byStdnum, quietly } from './stdnum-check.ts';
import stdnumExamples from './stdnum-examples.json' with { type: 'json' };

interface StdnumValidator {
  name: string;
  localName: string;
  abbreviation?: string;
  validate(value: string): { isValid: boolean };
}

/** Validators with a dedicated detector elsewhere (own pattern), so not repeated here. */
const coveredElsewhere = new Set([
  'US.ssn', 'GB.nino', 'CA.sin', 'IN.aadhaar', 'IT.codicefiscale', 'ES.dni', 'ES.nie', 'FR.nir', 'CN.ric', 'KR.rrn',
  'MX.curp', 'SE.personnummer', 'MX.clabe', 'AR.cbu', 'CA.bc_bhn', 'SI.jmbg',
]);

/**
 * Tests that run before stdnum, for identifiers named by a word that names many other fields ("uid"):
 * stdnum requires these prefixes too (CHE-..., ATU... or U...), and answering here spares a stdnum call
 * (which throws on rejection) for every user id in a payload of "uid" fields.
 */
const beforeStdnum: Record<string, (candidate: string) => boolean> = {
  'CH.uid': (candidate) => {
    const compact = compactOf(candidate);
    return compact.length === 12 && compact.startsWith('CHE');
  },
  'AT.uid': (candidate) => {
    const compact = compactOf(candidate);
    return (compact.length === 11 && compact.startsWith('ATU')) || (compact.length === 9 && compact.startsWith('U'));
  },
};

/**
 * How a candidate is given to stdnum where stdnum (1.12) does not take a common way of writing it:
 * Chile's RUT and RUN are written with thousands dots (12.345.678-5), which its compact form keeps.
 */
const spelledForStdnum: Record<string, (candidate: string) => string> = {
  'CL.rut': (candidate) => candidate.replaceAll('.', ''),
  'CL.run': (candidate) => candidate.replaceAll('.', ''),
};

/** Upper case, without the separators identifiers are written with. */
function compactOf(candidate: string): string {
  let compact = '';
  for (const c of candidate.toUpperCase()) if (c !== ' ' && c !== '.' && c !== '-' && c !== '/') compact += c;
  return compact;
}

/**
 * Checks a candidate must also pass where stdnum (1.12) accepts more than the format allows: its GB.vat
 * takes any two letters and three digits for the government-department (GD) and health-authority (HA)
 * numbers, so "BG 075" (the start of a Bulgarian VAT number) passed as a UK one.
 */
const alsoRequired: Record<string, (candidate: string) => boolean> = {
  'GB.vat': (candidate) => {
    let compact = compactOf(candidate);
    if (compact.startsWith('GB')) compact = compact.slice(2);
    return compact.length !== 5 || compact.startsWith('GD') || compact.startsWith('HA');
  },
};

/**
 * stdnum validators without a check digit over the whole number, read from their source (stdnum
 * 1.12) and measured (most single-digit changes of their test vectors still validate). The rest
 * have one; catalogue.test.ts holds every detector that claims a checksum to that.
 * - format: length and character classes, perhaps a fixed leading character.
 * - structure: dates, registry or region tables, prefixes, or a check digit over only part of
 *   the number (CA.bn, CA.gst, CA.qst, ID.npwp: the first nine digits; CZ.rc/SK.rc: none in the
 *   nine-digit form; DE.passport: only the issuing-authority part; EC.ruc, GT.cui, NL.btw, NZ.bank).
 */
const withoutCheckDigit: Record<string, Exclude<ValidationKind, 'checksum'>> = {
  'AO.bi': 'format', 'AO.nif': 'format', 'AR.dni': 'format', 'AT.businessid': 'format', 'AZ.pin': 'format', 'AZ.tin': 'format',
  'CA.pst': 'format', 'CR.cpf': 'format', 'CR.cr': 'format', 'DZ.nif': 'format', 'EG.tn': 'format', 'FO.vn': 'format',
  'IS.vsk': 'format', 'KE.pin': 'format', 'LI.peid': 'format', 'MA.ice9': 'format', 'MZ.bi': 'format', 'PE.ce': 'format',
  'PK.ntn': 'format', 'PY.cedula': 'format', 'TW.ban': 'format', 'ZA.vat': 'format',
  'AD.nrt': 'structure', 'AL.nipt': 'structure', 'BO.ci': 'structure', 'BZ.tin': 'structure', 'CA.bn': 'structure', 'CA.gst': 'structure',
  'CA.qst': 'structure', 'CR.cpj': 'structure', 'CU.ni': 'structure', 'CZ.rc': 'structure', 'DE.passport': 'structure', 'DE.stnr': 'structure',
  'DK.cpr': 'structure', 'DO.ncf': 'structure', 'EC.ruc': 'structure', 'GT.cui': 'structure', 'ID.npwp': 'structure', 'IN.pan': 'structure',
  'MY.nric': 'structure', 'NL.btw': 'structure', 'NZ.bank': 'structure', 'PK.cnic': 'structure', 'RO.onrc': 'structure', 'SK.rc': 'structure',
  'SM.coe': 'structure', 'TN.mf': 'structure', 'TW.tax_code': 'structure', 'US.ein': 'structure',
};

const validatedBy: Record<ValidationKind, string> = {
  checksum: 'check digits validated by stdnum',
  structure: 'structure checked by stdnum, no check digit over the whole number',
  format: 'format checked by stdnum, no check digit',
};

/** Extra context words where the abbreviation alone is too short or ambiguous. */
const extraKeywords: Record<string, string[]> = {
  'BR.cpf': ['cpf'], 'BR.cnpj': ['cnpj'], 'PL.pesel': ['pesel'], 'NL.bsn': ['bsn', 'burgerservicenummer'], 'FI.hetu': ['hetu', 'henkilötunnus'],
  'DK.cpr': ['cpr', 'cpr-nummer'], 'NO.fodselsnummer': ['fødselsnummer', 'fodselsnummer'], 'BE.nn': ['rijksregisternummer', 'numéro national'],
  'TR.tckimlik': ['tc kimlik', 'tckimlik', 'kimlik'], 'RO.cnp': ['cnp'], 'BG.egn': ['egn', 'егн'], 'IE.pps': ['pps', 'ppsn'],
  'ZA.idnr': ['south african id', 'sa id'], 'IL.idnr': ['teudat zehut', 'israeli id'], 'IS.kennitala': ['kennitala'], 'EE.ik': ['isikukood'],
  'LT.asmens': ['asmens kodas'], 'DE.idnr': ['steuer-id', 'steueridentifikationsnummer', 'idnr'], 'DE.svnr': ['sozialversicherungsnummer', 'rentenversicherungsnummer'],
  'AU.tfn': ['tfn', 'tax file number'], 'NZ.ird': ['ird'], 'HK.hkid': ['hkid'], 'TW.natid': ['national id'], 'TH.idnr': ['thai id'],
  'MY.nric': ['nric', 'mykad'], 'PK.cnic': ['cnic'], 'IN.pan': ['pan', 'permanent account number'], 'IN.epic': ['epic number', 'epic no', 'voter id'],
  'CH.ssn': ['ahv', 'avs', 'ahv-nr'], 'AT.vnr': ['versicherungsnummer', 'svnr'], 'GR.amka': ['amka'], 'CZ.rc': ['rodné číslo', 'rodne cislo'],
  'SK.rc': ['rodné číslo', 'rodne cislo'], 'HR.oib': ['oib'], 'RU.inn': ['инн'], 'KE.pin': ['kra pin'], 'FO.vn': ['vinnutal', 'v-tal'], 'UA.rntrc': ['rnokpp', 'рнокпп'], 'US.ein': ['ein', 'employer identification'],
};

function classify(name: string): { group: DetectorGroup; dataClass: string } {
  if (/health/i.test(name)) return { group: 'health', dataClass: 'patient-id' };
  if (/passport/i.test(name)) return { group: 'national-id', dataClass: 'passport' };
  if (/bank|account/i.test(name)) return { group: 'financial', dataClass: 'bank-account' };
  if (/vat|tax|fiscal|revenue|taxpayer|receipt/i.test(name)) return { group: 'tax-id', dataClass: 'tax-id' };
  if (/compan|business|organi[sz]ation|enterprise|establishment|register|trade|entity|corporate|drugs|memorandum/i.test(name)) {
    return { group: 'company-id', dataClass: 'company-id' };
  }
  return { group: 'national-id', dataClass: 'national-id' };
}

function keywordsFor(path: string, key: string, v: StdnumValidator): string[] {
  const words = new Set<string>([key.toLowerCase().replace(/_/g, ' ')]);
  for (const part of (v.abbreviation ?? '').split(/[,/()]/)) {
    const word = part.trim().toLowerCase().replace(/\s*(no|nr|nro|kodas|номер)\.?$/i, '').trim();
    if (word.length >= 2 && word.length <= 24) words.add(word);
  }
  const local = v.localName?.trim().toLowerCase();
  if (local && local.length >= 4 && local.length <= 60 && local !== 'name') words.add(local);
  for (const extra of extraKeywords[path] ?? []) words.add(extra);
  return [...words].filter((w) => (w.length >= 2 && !/^(id|no|nr|ci|cn|cr)$/.test(w)) || extraKeywords[path]?.includes(w));
}

/**
 * Abbreviations that are, far more often, something else: a domain ending (".org"), English words
 * ("run", "bank", "epic", "inn", "ban"), German ones ("bis"), tokens of code and tickets ("ui",
 * "uid", "vs", "cc", "rc", "pw", "vid"). In running text they would put every word near them to the
 * identifier's test (a tool result with "https://...example.org/..." in each record was inspected at
 * 5 MB/s instead of 230) and make numbers after them identifiers by chance; as a field's name
 * (`{"uid": "CHE-100.155.212"}`) they still label its value (fieldNameKeywords).
 */
const commonWords = new Set(['org', 'run', 'ui', 'uid', 'vs', 'cc', 'hp', 'pw', 'rc', 'rn', 'sv', 'nn', 'bi', 'ce', 'ni', 'ik', 'vn', 'tn', 'mf', 'vid', 'vin', 'epic', 'inn', 'bank', 'ice', 'pin', 'ban', 'bis']);

const examples = stdnumExamples as Record<string, string[]>;

export const nationalDetectors: DetectorDefinition[] = Object.entries(stdnum as unknown as Record<string, Record<string, StdnumValidator>>)
  .flatMap(([country, validators]) =>
    Object.entries(validators).map(([key, validator]) => ({ country, key, validator, path: `${country}.${key}` })),
  )
  .filter(({ path }) => !coveredElsewhere.has(path))
  .map(({ country, key, validator, path }): DetectorDefinition => {
    const { group, dataClass } = classify(validator.name);
    const words = keywordsFor(path, key, validator);
    const keywords = words.filter((w) => !commonWords.has(w) || extraKeywords[path]?.includes(w));
    const fieldNameKeywords = words.filter((w) => !keywords.includes(w));
    // The catalogue example: stdnum's first test number written as identifiers are (one vector, "DE 136,695 976", has a comma).
    const sample = examples[path]?.find((e) => !e.includes(',')) ?? examples[path]?.[0];
    const validation = withoutCheckDigit[path] ?? 'checksum';
    return {
      id: `${country.toLowerCase()}-${key.toLowerCase().replace(/_/g, '-')}`,
      group,
      dataClass,
      description: `${validator.name}${validator.abbreviation ? ` (${validator.abbreviation})` : ''}, ${validatedBy[validation]}; reported next to its name`,
      examples: sample ? [`${keywords[0] ?? words[0]}: ${sample}`] : [],
      keywords,
      ...(fieldNameKeywords.length > 0 ? { fieldNameKeywords } : {}),
      requiresContext: true,
      contextWindow: 32,
      validation,
      validate: byStdnum((candidate) => (beforeStdnum[path]?.(candidate) ?? true) && quietly(() => validator.validate(spelledForStdnum[path]?.(candidate) ?? candidate).isValid) && (alsoRequired[path]?.(candidate) ?? true)),
      confidence: { base: 0.8, contextBoost: 0.15, negativePenalty: 0.3 },
      profiles: group === 'health' ? ['hipaa', 'gdpr-pii'] : ['gdpr-pii'],
      maskKeep: 0,
    };
  });
