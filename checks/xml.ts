/** A small, strict XML reader for nvidia-smi's `-q -x` output: elements, attributes and text; no DTD. */

export interface XmlNode {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
  /** Concatenated direct text, trimmed. */
  text: string;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);/g, (whole, e: string) => {
    if (e.startsWith("#x")) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith("#")) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? whole;
  });
}

const TOKEN =
  /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<!\[CDATA\[([\s\S]*?)\]\]>|<![^>]*>|<\/([\w:.-]+)\s*>|<([\w:.-]+)((?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)|(<)/g;
const ATTR = /([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;

/** Parses a document; returns null when it is not well-formed (truncated output, a wrapper's text). */
export function parseXml(text: string): XmlNode | null {
  const root: XmlNode = { name: "#document", attrs: {}, children: [], text: "" };
  const stack: XmlNode[] = [root];
  const texts: string[][] = [[]];
  for (const m of text.matchAll(TOKEN)) {
    const [, cdata, close, open, attrText, selfClose, chars, stray] = m;
    const top = stack[stack.length - 1];
    if (stray !== undefined) return null;
    if (chars !== undefined) {
      if (stack.length === 1 && chars.trim()) return null;
      texts[texts.length - 1].push(decode(chars));
    } else if (cdata !== undefined) {
      texts[texts.length - 1].push(cdata);
    } else if (close !== undefined) {
      if (top.name !== close || stack.length === 1) return null;
      top.text = texts.pop()!.join("").trim();
      stack.pop();
    } else if (open !== undefined) {
      const node: XmlNode = { name: open, attrs: {}, children: [], text: "" };
      for (const a of (attrText ?? "").matchAll(ATTR)) node.attrs[a[1]] = decode(a[2] ?? a[3] ?? "");
      top.children.push(node);
      if (!selfClose) {
        stack.push(node);
        texts.push([]);
      }
    }
  }
  if (stack.length !== 1 || root.children.length !== 1) return null;
  return root.children[0];
}

/** The first child reached by a slash-separated path of element names, or null. */
export function child(node: XmlNode | null | undefined, path: string): XmlNode | null {
  let cur: XmlNode | null | undefined = node;
  for (const part of path.split("/")) {
    cur = cur?.children.find((c) => c.name === part);
    if (!cur) return null;
  }
  return cur ?? null;
}

/** Text at a path, or null when the element is absent. */
export function textAt(node: XmlNode | null | undefined, path: string): string | null {
  const c = child(node, path);
  return c ? c.text : null;
}

/** Every descendant (depth first) with its slash path relative to `node`. */
export function* walk(node: XmlNode, prefix = ""): Generator<[string, XmlNode]> {
  for (const c of node.children) {
    const p = prefix ? `${prefix}/${c.name}` : c.name;
    yield [p, c];
    yield* walk(c, p);
  }
}
