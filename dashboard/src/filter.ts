// Text a person typed, put into a filter expression as a value: always a string literal of the filter language
// (hapta/query/lexer.py: double quotes, backslash escapes, \uXXXX), so that nothing typed can end it early and add
// to the expression.
export function quoted(text: string): string {
  const escaped = text
    .replace(/[\\"]/g, (char) => "\\" + char)
    .replace(/[\u0000-\u001f\u007f]/g, (char) => "\\u" + char.charCodeAt(0).toString(16).padStart(4, "0"));
  return `"${escaped}"`;
}
