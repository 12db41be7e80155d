// Looks up a stdnum validator by "CC.name" once, at module load.
import { stdnum } from 'stdnum';

export function stdnumCheck(path: string): (candidate: string) => boolean {
  const [country, name] = path.split('.') as [string, string];
  const validator = (stdnum as unknown as Record<string, Record<string, { validate(v: string): { isValid: boolean } }> | undefined>)[country]?.[name];
  if (!validator) throw new Error(`stdnum has no validator ${path}`);
  return (candidate) => {
    try {
      return validator.validate(candidate).isValid;
    } catch {
      return false;
    }
  };
}
