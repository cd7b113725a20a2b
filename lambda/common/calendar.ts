/**
 * Calendar fields (year, month 1-12, day, hour, minute, second) read as UTC, and whether
 * they name a time that exists: Date rolls impossible fields over (February 30th into
 * March) rather than refusing them, so the time must give back the fields it was made of.
 * Date.UTC is not used: it maps years 0-99 to 1900-1999.
 */
export function utcFields(fields: number[], millisecond: number): { time: Date; exists: boolean } {
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = fields;
  const time = new Date(0);
  time.setUTCFullYear(year, month - 1, day);
  time.setUTCHours(hour, minute, second, millisecond);
  const exists =
    time.getUTCFullYear() === year &&
    time.getUTCMonth() === month - 1 &&
    time.getUTCDate() === day &&
    time.getUTCHours() === hour &&
    time.getUTCMinutes() === minute &&
    time.getUTCSeconds() === second;
  return { time, exists };
}
