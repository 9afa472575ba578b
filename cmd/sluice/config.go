package main

// The broker's settings come from four places, in this order of precedence:
// a flag on the command line, an environment variable, the config file,
// the default. One rule names a setting everywhere: the flag --replica-max-lag
// is the environment variable SLUICE_REPLICA_MAX_LAG and the config file key
// replica-max-lag. The rule is applied to the flag set itself, so a flag
// added to the broker command is settable from the environment and the file
// without further code.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	yaml "go.yaml.in/yaml/v3"
)

// envPrefix starts the environment variable of every broker setting.
const envPrefix = "SLUICE_"

// maxConfigBytes bounds the config file read: a broker's settings fit in
// a few kilobytes, and a path pointing at something else is refused
// rather than read whole.
const maxConfigBytes = 1 << 20

// notSettings are the broker command's flags that are not settings of the
// broker: they are read from the command line only.
var notSettings = map[string]bool{"help": true, "config": true, "print-config": true}

// secretSettings are the settings whose value is itself a secret (not a
// file path): --print-config writes redacted in their place, and a config
// file holding that placeholder is refused rather than read as the value.
// TestSecretSettingsRedacted fails when a setting named like a secret is
// in neither this set nor secretLikePaths.
var secretSettings = map[string]bool{"gossip-key": true}

// redacted stands for a secret setting's value in --print-config.
const redacted = "<redacted>"

// settingSource says where a setting's effective value came from.
type settingSource string

const (
	fromFlag    settingSource = "flag"
	fromEnv     settingSource = "env"
	fromFile    settingSource = "file"
	fromDefault settingSource = "default"
)

// settingsError is a setting refused at start: the key (a config file
// key, an environment variable or a flag) and why.
type settingsError struct {
	where string // "config file sluice.yaml", "environment"
	key   string
	err   error
}

func (e *settingsError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.where, e.key, e.err)
}

func (e *settingsError) Unwrap() error { return e.err }

// envName is the environment variable of the setting named by flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// settingFlags are the flags of fs that are settings, sorted by name.
func settingFlags(fs *pflag.FlagSet) []*pflag.Flag {
	var out []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) {
		if !notSettings[f.Name] {
			out = append(out, f)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// readConfigFile parses a broker config file: a YAML mapping from setting
// keys to values. Unknown keys are refused with their name, as are values
// that are neither scalars nor lists of scalars (a list is joined with
// commas, the form of every list-valued flag).
func readConfigFile(fs *pflag.FlagSet, path string, r io.Reader) (map[string]string, error) {
	where := "config file " + path
	data, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", where, maxConfigBytes)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]string{}, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: want one YAML document, found more", where)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return map[string]string{}, nil // only comments
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: line %d: want a mapping of setting keys to values", where, root.Line)
	}
	out := make(map[string]string, len(root.Content)/2)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		keyErr := func(format string, args ...any) error {
			return &settingsError{where: where, key: fmt.Sprintf("line %d: key %s", k.Line, key), err: fmt.Errorf(format, args...)}
		}
		if k.Kind != yaml.ScalarNode {
			return nil, &settingsError{where: where, key: fmt.Sprintf("line %d", k.Line), err: errors.New("a key must be a string")}
		}
		if f := fs.Lookup(key); f == nil || notSettings[key] {
			return nil, keyErr("unknown setting (settings are the broker's flags without --: see sluice broker --help)")
		}
		if _, dup := out[key]; dup {
			return nil, keyErr("set twice")
		}
		value, err := scalarValue(v)
		if err != nil {
			return nil, keyErr("%v", err)
		}
		if value == redacted && secretSettings[key] {
			return nil, keyErr("%s is what --print-config writes for a secret: put the value here, or set it with %s", redacted, envName(key))
		}
		out[key] = value
	}
	return out, nil
}

// scalarValue is the text of a scalar node, or of a list of scalars
// joined with commas.
func scalarValue(v *yaml.Node) (string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", errors.New(`no value (write "" for an empty one)`)
		}
		return v.Value, nil
	case yaml.SequenceNode:
		items := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
				return "", fmt.Errorf("line %d: a list may hold only values", item.Line)
			}
			items = append(items, item.Value)
		}
		return strings.Join(items, ","), nil
	default:
		return "", errors.New("want a value or a list of values, not a mapping")
	}
}

// applySettings sets every setting flag of fs that the command line left
// alone from the environment (lookupEnv) and then from file (the values of
// the config file, nil for none). It returns where each setting's value
// came from. A value a flag refuses is an error naming the variable or the
// key and the reason.
func applySettings(fs *pflag.FlagSet, file map[string]string, filePath string, lookupEnv func(string) (string, bool)) (map[string]settingSource, error) {
	sources := map[string]settingSource{}
	for _, f := range settingFlags(fs) {
		if f.Changed {
			sources[f.Name] = fromFlag
			continue
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				return nil, &settingsError{where: "environment", key: fmt.Sprintf("%s=%q", envName(f.Name), v), err: flagSetError(f, err)}
			}
			sources[f.Name] = fromEnv
			continue
		}
		if v, ok := file[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				return nil, &settingsError{where: "config file " + filePath, key: fmt.Sprintf("key %s: %q", f.Name, v), err: flagSetError(f, err)}
			}
			sources[f.Name] = fromFile
			continue
		}
		sources[f.Name] = fromDefault
	}
	return sources, nil
}

// flagSetError strips pflag's `invalid argument "x" for "--name" flag:`
// from a refused value, which the caller names in its own words, leaving
// the reason.
func flagSetError(f *pflag.Flag, err error) error {
	msg := err.Error()
	if i := strings.Index(msg, " flag: "); i >= 0 && strings.HasPrefix(msg, "invalid argument") {
		msg = msg[i+len(" flag: "):]
	}
	return fmt.Errorf("want a %s: %s", f.Value.Type(), msg)
}

// loadSettings applies the environment and the config file to the broker
// command's flags. The config file is --config, else $SLUICE_CONFIG, else
// none.
func loadSettings(fs *pflag.FlagSet, configPath string, lookupEnv func(string) (string, bool)) (map[string]settingSource, error) {
	if !fs.Changed("config") {
		if v, ok := lookupEnv(envName("config")); ok {
			configPath = v
		}
	}
	var file map[string]string
	if configPath != "" {
		fh, err := os.Open(configPath)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		file, err = readConfigFile(fs, configPath, fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	return applySettings(fs, file, configPath, lookupEnv)
}

// printSettings writes the effective settings as a YAML config file that
// loads back to the same values: each key with its flag's help above it
// and where its value came from beside it. A secret setting that is set
// is written as redacted: the output goes to terminals, tickets and
// chats (files named by a setting, a TLS key or the cluster secret's,
// are paths and print as they are).
func printSettings(w io.Writer, fs *pflag.FlagSet, sources map[string]settingSource) error {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, f := range settingFlags(fs) {
		if f.Hidden && sources[f.Name] == fromDefault {
			continue // a test-only setting, shown only when set
		}
		key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Name,
			HeadComment: fmt.Sprintf("%s (env %s)", f.Usage, envName(f.Name))}
		var value *yaml.Node
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			value = &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			for _, s := range sv.GetSlice() {
				value.Content = append(value.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
			}
		} else {
			// Every value is written as a string: the loader hands the
			// text to the flag, which parses it as --name=text would.
			value = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Value.String()}
			if t := f.Value.Type(); t != "string" && t != "duration" {
				value.Tag = "" // numbers and booleans print bare
			}
		}
		value.LineComment = string(sources[f.Name])
		if secretSettings[f.Name] && f.Value.String() != "" {
			value = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: redacted,
				LineComment: string(sources[f.Name]) + ", redacted: put the value here or set " + envName(f.Name)}
		}
		m.Content = append(m.Content, key, value)
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{m},
		HeadComment: "sluice broker settings: flag > environment > config file > default.\n" +
			"Each value's comment says where it came from."}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	return enc.Close()
}
