// Joins the declarations tsc writes for each module of src/ into one file, as the package's types must be: the
// declarations the entry's exports reach, each once, with the imports between the modules gone and `export` kept
// only on what the entry exports. What it cannot join faithfully (a renamed import or export, `export *`, a name
// two modules both declare, a type written as import("...")) stops the build with the reason, and the joined file
// must type-check on its own.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";

/** The declarations of `entry` (a module name: "hapta" for hapta.d.ts in `folder`), joined into one file. */
export function joinDeclarations(folder, entry) {
  const modules = new Map();
  const load = (name) => {
    if (!modules.has(name)) {
      const module = parse(folder, name);
      modules.set(name, module);
      module.uses.forEach(load);
    }
    return modules.get(name);
  };
  load(entry);

  // Where a name, as one module sees it, is declared: "module:name".
  const resolve = (moduleName, name, seen = new Set()) => {
    const module = modules.get(moduleName);
    const at = `${moduleName}:${name}`;
    if (seen.has(at)) fail(moduleName, `${name} is re-exported in a circle`);
    seen.add(at);
    if (module.declared.has(name)) return at;
    const from = module.imports.get(name) ?? module.exports.get(name);
    if (from) return resolve(from, name, seen);
    fail(moduleName, `${name} is neither declared nor imported here`);
  };

  const entryModule = modules.get(entry);
  const exported = new Set([...entryModule.exports.keys(),
                            ...entryModule.statements.filter((s) => s.exported).flatMap((s) => s.names)]);
  const isPublic = new Set([...exported].map((name) => resolve(entry, name)));

  // What the public declarations reach: every name they mention that their module declares or imports.
  const reached = new Set();
  const queue = [...isPublic];
  while (queue.length) {
    const at = queue.pop();
    if (reached.has(at)) continue;
    reached.add(at);
    const [moduleName, name] = at.split(":");
    const module = modules.get(moduleName);
    for (const { statement } of module.statements.filter((s) => s.names.includes(name))) {
      for (const mentioned of mentions(statement)) {
        if (module.declared.has(mentioned) || module.imports.has(mentioned)) queue.push(resolve(moduleName, mentioned));
      }
    }
  }

  const owner = new Map();
  for (const at of reached) {
    const name = at.split(":")[1];
    if (owner.has(name)) fail(entry, `${owner.get(name)} and ${at} both declare ${name}: rename one`);
    owner.set(name, at);
  }

  // Modules before the modules that use them; each module's declarations in its own order.
  const order = [];
  const visiting = new Set();
  const visit = (name) => {
    if (order.includes(name)) return;
    if (visiting.has(name)) fail(name, "imports itself through others");
    visiting.add(name);
    modules.get(name).uses.forEach(visit);
    visiting.delete(name);
    order.push(name);
  };
  visit(entry);

  const parts = [];
  for (const moduleName of order) {
    const module = modules.get(moduleName);
    for (const { statement, names } of module.statements) {
      const ats = names.map((name) => `${moduleName}:${name}`);
      if (!ats.some((at) => reached.has(at))) continue;
      if (names.length > 1) fail(moduleName, `declare ${names.join(", ")} one statement each`);
      parts.push(declaration(module, statement, isPublic.has(ats[0])));
    }
  }
  return parts.join("\n") + "\nexport {};\n";
}

function fail(module, reason) {
  throw new Error(`joining the declarations: ${module}.d.ts: ${reason}`);
}

/** One module's declarations: what it declares, imports and re-exports, and the modules it uses. */
function parse(folder, name) {
  const path = join(folder, `${name}.d.ts`);
  const text = readFileSync(path, "utf8");
  const file = ts.createSourceFile(path, text, ts.ScriptTarget.ES2022, true);
  const module = { name, text, statements: [], declared: new Set(), imports: new Map(), exports: new Map(),
                   uses: [] };
  const source = (specifier) => {
    const found = /^\.\/([\w-]+)\.js$/.exec(specifier.text);
    if (!found) fail(name, `"${specifier.text}" is not a module of src/ (./name.js)`);
    if (!module.uses.includes(found[1])) module.uses.push(found[1]);
    return found[1];
  };
  for (const statement of file.statements) {
    if (ts.isImportDeclaration(statement)) {
      const from = source(statement.moduleSpecifier);
      const clause = statement.importClause;
      if (!clause || clause.name || !clause.namedBindings || !ts.isNamedImports(clause.namedBindings)) {
        fail(name, `only named imports join: ${statement.getText()}`);
      }
      for (const element of clause.namedBindings.elements) {
        if (element.propertyName) fail(name, `a renamed import does not join: ${statement.getText()}`);
        module.imports.set(element.name.text, from);
      }
    } else if (ts.isExportDeclaration(statement)) {
      const from = statement.moduleSpecifier ? source(statement.moduleSpecifier) : null;
      if (!statement.exportClause) fail(name, `export * does not join: ${statement.getText()}`);
      for (const element of statement.exportClause.elements) {
        if (element.propertyName) fail(name, `a renamed export does not join: ${statement.getText()}`);
        module.exports.set(element.name.text, from);   // null: declared or imported here
      }
    } else if (ts.isExportAssignment(statement)) {
      fail(name, "export default / export = do not join");
    } else {
      const names = declaredNames(statement, name);
      names.forEach((declared) => module.declared.add(declared));
      const exported = !!ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
      if (exported && ts.getModifiers(statement).some((m) => m.kind === ts.SyntaxKind.DefaultKeyword)) {
        fail(name, "export default does not join");
      }
      module.statements.push({ statement, names, exported });
    }
  }
  for (const [exported, from] of module.exports) {   // `export { x }` of a name imported here: from its module
    if (from === null && !module.declared.has(exported)) module.exports.set(exported, module.imports.get(exported));
  }
  return module;
}

function declaredNames(statement, module) {
  if (ts.isVariableStatement(statement)) return statement.declarationList.declarations.map((d) => d.name.getText());
  if ((ts.isInterfaceDeclaration(statement) || ts.isTypeAliasDeclaration(statement) || ts.isClassDeclaration(statement)
       || ts.isFunctionDeclaration(statement) || ts.isEnumDeclaration(statement)) && statement.name) {
    return [statement.name.text];
  }
  fail(module, `cannot join a ${ts.SyntaxKind[statement.kind]}: ${statement.getText().slice(0, 80)}`);
}

/** The identifiers a declaration mentions, but for the names it gives its own members and parameters. */
function mentions(statement) {
  const found = new Set();
  const walk = (node) => {
    if (ts.isIdentifier(node) && !(node.parent && node.parent.name === node)) found.add(node.text);
    ts.forEachChild(node, walk);
  };
  ts.forEachChild(statement, walk);
  return found;
}

/** A declaration's text with its doc comment; `export` only where the entry exports it. */
function declaration(module, statement, isPublic) {
  const comment = module.text.slice(statement.getFullStart(), statement.getStart()).trim();
  let body = module.text.slice(statement.getStart(), statement.getEnd());
  if (body.includes("import(")) fail(module.name, `a type written as import("..."): ${body.slice(0, 80)}`);
  const exported = body.startsWith("export ");
  if (exported && !isPublic) body = body.slice("export ".length);
  if (!exported && isPublic) body = "export " + body;
  return comment ? `${comment}\n${body}` : body;
}
