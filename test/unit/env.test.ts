import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { closestVariable, DEFAULTS, unknownVariables, VARIABLE_FAMILIES, VARIABLE_NAMES, VARIABLES } from '../../lambda/common/env.ts';

/** docs/configuration.md's table of variables: each name with its row's default cell. */
async function documentedVariables(): Promise<Map<string, string>> {
  const page = await readFile(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  const section = page.slice(page.indexOf('## Environment variables'), page.indexOf('\n## ', page.indexOf('## Environment variables') + 1));
  const documented = new Map<string, string>();
  for (const row of section.split('\n').filter((line) => line.startsWith('| `'))) {
    const [names = '', , defaults = ''] = row
      .slice(1, -1)
      .split(' | ')
      .map((cell) => cell.trim());
    for (const name of names.split(', ')) documented.set(name.replaceAll('`', ''), defaults);
  }
  return documented;
}

describe('the registry of environment variables', () => {
  it('is the table of docs/configuration.md, name for name', async () => {
    const documented = await documentedVariables();
    expect([...documented.keys()].filter((name) => !(name in VARIABLES))).toEqual([]);
    expect(VARIABLE_NAMES.filter((name) => !documented.has(name))).toEqual([]);
  });

  it('has the defaults docs/configuration.md gives, and requires what it says is required', async () => {
    const documented = await documentedVariables();
    const undocumented = VARIABLE_NAMES.filter((name) => {
      const entry: { default?: string | number; derived?: string; required?: true } = VARIABLES[name];
      const cell = documented.get(name) ?? '';
      if (entry.required) return cell !== 'required';
      return !cell.includes(`\`${entry.default ?? entry.derived}\``);
    });
    expect(undocumented).toEqual([]);
  });

  it('gives every integer a default inside its own range, or says how it is found instead', () => {
    const outside = VARIABLE_NAMES.filter((name) => {
      const entry: { check: { kind: string; min?: number; max?: number }; derived?: string } = VARIABLES[name];
      const { check } = entry;
      const value = (DEFAULTS as Record<string, unknown>)[name];
      if (check.kind !== 'integer' || (value === undefined && entry.derived !== undefined)) return false;
      return !(typeof value === 'number' && value >= (check.min ?? 0) && value <= (check.max ?? 0));
    });
    expect(outside).toEqual([]);
  });
});

describe('unknownVariables', () => {
  it("covers the exporter's own families, curation's included, and leaves Powertools' to Powertools", () => {
    expect([...VARIABLE_FAMILIES].sort()).toEqual(['CURATE_', 'RUN_', 'SNAPSHOT_', 'THINGPARK_', 'TOKEN_']);
    expect(unknownVariables({ POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_DEV: 'true', CURATE_CHANGE_FIELDS: 'name' })).toEqual([]);
  });

  it('warns about a misspelt curation variable with the one meant', () => {
    expect(unknownVariables({ CURATE_INLNE_MIN_REMAINING_SECONDS: '0', CURATE_FIELDS: 'name' })).toEqual([
      { name: 'CURATE_FIELDS', message: 'CURATE_FIELDS is not a variable the exporter reads, so it is ignored' },
      {
        name: 'CURATE_INLNE_MIN_REMAINING_SECONDS',
        suggestion: 'CURATE_INLINE_MIN_REMAINING_SECONDS',
        message: 'CURATE_INLNE_MIN_REMAINING_SECONDS is not a variable the exporter reads, so it is ignored: did you mean CURATE_INLINE_MIN_REMAINING_SECONDS?',
      },
    ]);
    expect(closestVariable('CURATE_CHANGE_FIELD')).toBe('CURATE_CHANGE_FIELDS');
  });
});
