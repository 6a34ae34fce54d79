// Command chartcheck lints and renders streamproc's Helm chart without Helm or a cluster.
//
//	chartcheck [-f VALUES.yaml]... [-name RELEASE] [-namespace NS] CHART_DIR > manifests.yaml
//
// Helm itself takes over five minutes to build from source on a two-core machine, so CI
// renders the chart with what Helm renders it with: Go's text/template, the sprig function
// library, and Helm's own additions (include, tpl, required, toYaml, fromYaml, toJson,
// fromJson) written here the way Helm defines them. It is stricter than `helm template`:
// a missing value is an error (Helm's `lint --strict`), and every rendered document must be
// a YAML object with apiVersion, kind and a valid metadata.name. The Kubernetes schemas are
// checked afterwards, in Python, by tests/unit/ops/test_helm.py (scripts/chart-check).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

// Files is the chart's non-template files, as a template's .Files.
type Files map[string][]byte

// Get returns a file's text, or "" when the chart has no such file (as Helm's does).
func (f Files) Get(name string) string { return string(f[name]) }

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// dnsName is an RFC 1123 subdomain: what Kubernetes accepts as most objects' names.
var dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func main() {
	var values valueFiles
	flag.Var(&values, "f", "a values file over the chart's values.yaml (repeatable)")
	release := flag.String("name", "streamproc", "the release name")
	namespace := flag.String("namespace", "default", "the release namespace")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: chartcheck [-f values.yaml]... CHART_DIR")
		os.Exit(2)
	}
	out, err := run(flag.Arg(0), values, *release, *namespace)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartcheck:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func readYAMLMap(path string) (map[string]interface{}, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// merge lays over onto base, maps merged key by key, anything else replaced (Helm's rule).
func merge(base, over map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, bok := out[k].(map[string]interface{})
		om, ook := v.(map[string]interface{})
		if bok && ook {
			out[k] = merge(bm, om)
		} else {
			out[k] = v
		}
	}
	return out
}

func lintChart(dir string, chart map[string]interface{}) error {
	var problems []string
	str := func(key string) string { s, _ := chart[key].(string); return s }
	if str("apiVersion") != "v2" {
		problems = append(problems, "Chart.yaml: apiVersion must be v2")
	}
	if str("name") != filepath.Base(dir) {
		problems = append(problems, fmt.Sprintf("Chart.yaml: name %q is not the directory's", str("name")))
	}
	if _, err := semver.StrictNewVersion(str("version")); err != nil {
		problems = append(problems, fmt.Sprintf("Chart.yaml: version %q is not SemVer 2", str("version")))
	}
	for _, key := range []string{"appVersion", "description", "type"} {
		if str(key) == "" {
			problems = append(problems, "Chart.yaml: "+key+" is missing")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func loadFiles(dir string) (Files, []string, error) {
	files := Files{}
	var templates []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return nil
		}
		if strings.HasPrefix(rel, "templates/") {
			templates = append(templates, rel)
			return nil
		}
		raw, err := os.ReadFile(path) // follows a symlink, as Helm's loader does
		if err != nil {
			return err
		}
		files[rel] = raw
		return nil
	})
	sort.Strings(templates)
	return files, templates, err
}

func funcs(t **template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	// Helm removes these: a chart must not read the renderer's environment.
	delete(f, "env")
	delete(f, "expandenv")
	f["toYaml"] = func(v interface{}) string {
		out, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	f["fromYaml"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &out); err != nil {
			out["Error"] = err.Error()
		}
		return out
	}
	f["toJson"] = func(v interface{}) string {
		out, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(out)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			out["Error"] = err.Error()
		}
		return out
	}
	f["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	f["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := (*t).ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := (*t).Clone()
		if err != nil {
			return "", err
		}
		parsed, err := clone.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = parsed.Execute(&buf, data)
		return buf.String(), err
	}
	return f
}

func checkDocument(source, doc string) error {
	obj := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		return fmt.Errorf("%s: not YAML: %w\n%s", source, err, doc)
	}
	if len(obj) == 0 {
		return nil
	}
	meta, _ := obj["metadata"].(map[string]interface{})
	name, _ := meta["name"].(string)
	if obj["apiVersion"] == nil || obj["kind"] == nil || name == "" {
		return fmt.Errorf("%s: a document without apiVersion, kind or metadata.name", source)
	}
	if len(name) > 253 || !dnsName.MatchString(name) {
		return fmt.Errorf("%s: metadata.name %q is not a valid name", source, name)
	}
	return nil
}

func run(dir string, valueFiles []string, release, namespace string) (string, error) {
	dir = filepath.Clean(dir)
	chart, err := readYAMLMap(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	if err := lintChart(dir, chart); err != nil {
		return "", err
	}
	values, err := readYAMLMap(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, path := range valueFiles {
		over, err := readYAMLMap(path)
		if err != nil {
			return "", err
		}
		values = merge(values, over)
	}
	files, names, err := loadFiles(dir)
	if err != nil {
		return "", err
	}
	chartName := chart["name"].(string)
	var root *template.Template
	root = template.New(chartName).Funcs(funcs(&root)).Option("missingkey=error")
	for _, name := range names {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		if _, err := root.New(chartName + "/" + name).Parse(string(raw)); err != nil {
			return "", err
		}
	}
	chartValues := map[string]interface{}{}
	for k, v := range chart {
		chartValues[strings.ToUpper(k[:1])+k[1:]] = v
	}
	var out strings.Builder
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") || !strings.HasSuffix(base, ".yaml") {
			continue // partials, and NOTES.txt (Helm prints it, it applies nothing)
		}
		full := chartName + "/" + name
		data := map[string]interface{}{
			"Values": values,
			"Chart":  chartValues,
			"Files":  files,
			"Release": map[string]interface{}{
				"Name": release, "Namespace": namespace, "Service": "Helm",
				"IsInstall": true, "IsUpgrade": false, "Revision": 1,
			},
			"Template": map[string]interface{}{
				"Name": full, "BasePath": chartName + "/templates",
			},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, data); err != nil {
			return "", err
		}
		for _, doc := range strings.Split(buf.String(), "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			if err := checkDocument(full, doc); err != nil {
				return "", err
			}
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", full, strings.Trim(doc, "\n"))
		}
	}
	// NOTES.txt renders too (a template error there fails `helm install`), unprinted.
	if notes := root.Lookup(chartName + "/templates/NOTES.txt"); notes != nil {
		data := map[string]interface{}{"Values": values, "Chart": chartValues,
			"Release": map[string]interface{}{"Name": release, "Namespace": namespace}}
		if err := notes.Execute(&bytes.Buffer{}, data); err != nil {
			return "", err
		}
	}
	return out.String(), nil
}
