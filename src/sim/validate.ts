import { validationError, type ValidationItem } from "./http.js";

/**
 * Pydantic-v2-like field checks in "lax" mode (strings like "5" pass as int,
 * which is also how multipart form fields arrive). Errors accumulate so one
 * 422 lists every bad field, as FastAPI does.
 */
export class Fields {
  private readonly errors: ValidationItem[] = [];

  constructor(
    private readonly body: Record<string, unknown>,
    private readonly where: "body" | "query" = "body",
  ) {}

  private fail(type: string, name: string, msg: string, input: unknown, ctx?: Record<string, unknown>): undefined {
    this.errors.push({ type, loc: [this.where, name], msg, input, ...(ctx ? { ctx } : {}) });
    return undefined;
  }

  private value(name: string): unknown {
    const v = this.body[name];
    return v === null ? undefined : v;
  }

  /** A required string (`prompt`); the missing item copies the brief's exact shape. */
  requiredString(name: string): string {
    const v = this.body[name];
    if (v === undefined) {
      this.errors.push({ type: "missing", loc: [this.where, name], msg: "Field required", input: null });
      return "";
    }
    if (typeof v !== "string") {
      this.fail("string_type", name, "Input should be a valid string", v);
      return "";
    }
    return v;
  }

  string(name: string): string | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    if (typeof v !== "string") return this.fail("string_type", name, "Input should be a valid string", v);
    return v;
  }

  int(name: string, bounds: { ge?: number; le?: number } = {}): number | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    let n: number;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) return this.fail("finite_number", name, "Input should be a finite number", v);
      if (!Number.isInteger(v)) return this.fail("int_from_float", name, "Input should be a valid integer, got a number with a fractional part", v);
      n = v;
    } else if (typeof v === "string") {
      if (!/^\s*[-+]?\d+\s*$/.test(v)) return this.fail("int_parsing", name, "Input should be a valid integer, unable to parse string as an integer", v);
      n = Number(v);
    } else if (typeof v === "boolean") {
      n = v ? 1 : 0;
    } else {
      return this.fail("int_type", name, "Input should be a valid integer", v);
    }
    if (bounds.ge !== undefined && n < bounds.ge) {
      return this.fail("greater_than_equal", name, `Input should be greater than or equal to ${bounds.ge}`, v, { ge: bounds.ge });
    }
    if (bounds.le !== undefined && n > bounds.le) {
      return this.fail("less_than_equal", name, `Input should be less than or equal to ${bounds.le}`, v, { le: bounds.le });
    }
    return n;
  }

  number(name: string): number | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    if (typeof v === "number") return v;
    if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
    if (typeof v === "string") return this.fail("float_parsing", name, "Input should be a valid number, unable to parse string as a number", v);
    return this.fail("float_type", name, "Input should be a valid number", v);
  }

  bool(name: string): boolean | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    if (typeof v === "boolean") return v;
    if (v === 0 || v === 1) return v === 1;
    if (typeof v === "string") {
      const s = v.trim().toLowerCase();
      if (["true", "1", "yes", "on", "t", "y"].includes(s)) return true;
      if (["false", "0", "no", "off", "f", "n"].includes(s)) return false;
      return this.fail("bool_parsing", name, "Input should be a valid boolean, unable to interpret input", v);
    }
    return this.fail("bool_type", name, "Input should be a valid boolean", v);
  }

  /** A string limited to fixed values (pydantic `Literal[...]`). */
  literal<T extends string>(name: string, values: readonly T[]): T | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    if (typeof v === "string" && (values as readonly string[]).includes(v)) return v as T;
    const expected = values.map((x) => `'${x}'`).join(values.length > 2 ? ", " : " or ").replace(/, ([^,]*)$/, " or $1");
    return this.fail("literal_error", name, `Input should be ${expected}`, v, { expected });
  }

  /** Throws the 422 if any check failed. */
  done(): void {
    if (this.errors.length > 0) throw validationError(this.errors);
  }
}

/** "1024x768" → [1024, 768]; undefined when absent or malformed. */
export function parseSize(size: string | undefined): [number, number] | undefined {
  if (!size) return undefined;
  const match = /^\s*(\d+)\s*[x*]\s*(\d+)\s*$/i.exec(size);
  if (!match) return undefined;
  return [Number(match[1]), Number(match[2])];
}
