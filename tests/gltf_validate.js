// Khronos glTF-Validator on a GLB read from stdin; prints the JSON report on stdout.
// Used by tests/test_export.py: node tests/gltf_validate.js < file.glb
const fs = require("fs");
const path = require("path");
const validator = require(path.join(__dirname, "..", "node_modules", "gltf-validator"));

validator
  .validateBytes(new Uint8Array(fs.readFileSync(0)), { maxIssues: 0 })
  .then((report) => process.stdout.write(JSON.stringify(report)))
  .catch((error) => {
    process.stderr.write(String(error));
    process.exit(2);
  });
