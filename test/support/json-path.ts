/**
 * The JSONPath of the Amazon States Language, as far as the definitions the tests run use
 * it: `$` and `$.a.b` (field names only). Anything else (indexes, wildcards, filters, the
 * `$$` context object, intrinsic functions) is refused when the definition is loaded, so a
 * definition using it cannot run here with a meaning it does not have in Step Functions.
 */

/** A path, as the field names it walks from the root. */
export type Path = readonly string[];

const PATH = /^\$(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Parses `text` as a path; undefined when it is not one this module implements. */
export function parsePath(text: unknown): Path | undefined {
  if (typeof text !== 'string' || !PATH.test(text)) return undefined;
  return text.split('.').slice(1);
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** What `path` selects in `data`: `{ found: false }` when a field on the way is missing. */
export function select(data: unknown, path: Path): { found: true; value: unknown } | { found: false } {
  let value = data;
  for (const field of path) {
    if (!isObject(value) || !Object.hasOwn(value, field)) return { found: false };
    value = value[field];
  }
  return { found: true, value };
}

/**
 * `data` with `value` placed at `path` (a copy: `data` is left as it was), the fields on the
 * way created as objects; undefined when a field on the way holds something else.
 */
export function place(data: unknown, path: Path, value: unknown): { placed: unknown } | undefined {
  const [field, ...rest] = path;
  if (field === undefined) return { placed: value };
  if (!isObject(data)) return undefined;
  const inner = place(Object.hasOwn(data, field) ? data[field] : {}, rest, value);
  return inner && { placed: { ...data, [field]: inner.placed } };
}
