/**
 * The items met more than once, each named once, in the order they were first repeated:
 * `expect(repeated(refs)).toEqual([])` says which device came twice, where comparing the
 * size of a Set with a count says only that one did.
 */
export function repeated<T>(items: Iterable<T>): T[] {
  const seen = new Set<T>();
  const again = new Set<T>();
  for (const item of items) (seen.has(item) ? again : seen).add(item);
  return [...again];
}
