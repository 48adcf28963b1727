// Package examples holds the sample import files (org.yaml, org.csv),
// built into the commands that use them: the demo imports org.yaml from
// here, so it runs from any directory.
package examples

import _ "embed"

// OrgYAML is examples/org.yaml: 40 departments on 4 levels and 3
// workplaces.
//
//go:embed org.yaml
var OrgYAML []byte
