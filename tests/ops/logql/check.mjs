// LogQL syntax check with Grafana's own LogQL grammar (@grafana/lezer-logql, the parser of
// Grafana's Loki query editor). Reads a JSON array of queries on stdin and prints a JSON array
// with, for each query, the syntax errors found: [{"query": ..., "errors": [{"from", "to", "text"}]}].
// Exit status 0 even when a query has errors (the caller decides); 2 on bad input.
import { parser } from "@grafana/lezer-logql";

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;

let queries;
try {
  queries = JSON.parse(input);
} catch (e) {
  console.error(`bad input: ${e}`);
  process.exit(2);
}

const results = queries.map((query) => {
  const errors = [];
  const tree = parser.parse(query);
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        errors.push({ from: node.from, to: node.to, text: query.slice(Math.max(0, node.from - 10), node.to + 10) });
      }
    },
  });
  // The top node must be a complete LogQL expression.
  const top = tree.topNode.firstChild;
  if (!top || top.to !== query.trimEnd().length) {
    errors.push({ from: top ? top.to : 0, to: query.length, text: "incomplete expression" });
  }
  return { query, top: top ? top.name : null, errors };
});
process.stdout.write(JSON.stringify(results));
