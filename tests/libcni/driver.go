// Command libcni-driver runs a network configuration list through Debian's
// libcni (containernetworking/cni 1.1.2), the library runtimes embed, the way
// a runtime calls it: ADD, CHECK and DEL through libcni itself (result cache,
// prevResult, DEL in reverse), and GC and STATUS, which libcni gained only
// in 1.2, the way libcni 1.2 runs them (each plugin of the list in order,
// cniVersion 1.1.0, GC with the attachments the runtime keeps).
//
// Usage:
//
//	libcni-driver add|check|del CONFLIST NETNS CONTAINERID IFNAME
//	libcni-driver gc CONFLIST [CONTAINERID/IFNAME]...
//	libcni-driver status CONFLIST
//
// Plugins are found in CNI_PATH (colon-separated), results are cached in
// CNI_CACHE_DIR. ADD prints the result; an error prints the plugin's error
// JSON (or the message) on stderr and exits 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: libcni-driver add|check|del|gc|status CONFLIST ...")
	}
	verb, file := args[0], args[1]
	list, err := libcni.ConfListFromFile(file)
	if err != nil {
		return fmt.Errorf("loading %s: %w", file, err)
	}
	paths := filepath.SplitList(os.Getenv("CNI_PATH"))
	cni := libcni.NewCNIConfigWithCacheDir(paths, os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.Background()
	switch verb {
	case "add", "check", "del":
		if len(args) != 5 {
			return fmt.Errorf("usage: libcni-driver %s CONFLIST NETNS CONTAINERID IFNAME", verb)
		}
		rt := &libcni.RuntimeConf{ContainerID: args[3], NetNS: args[2], IfName: args[4]}
		switch verb {
		case "add":
			result, err := cni.AddNetworkList(ctx, list, rt)
			if err != nil {
				return err
			}
			return result.Print()
		case "check":
			return cni.CheckNetworkList(ctx, list, rt)
		default:
			return cni.DelNetworkList(ctx, list, rt)
		}
	case "gc":
		var valid []map[string]string
		for _, a := range args[2:] {
			id, ifname, ok := strings.Cut(a, "/")
			if !ok {
				return fmt.Errorf("attachment %q is not CONTAINERID/IFNAME", a)
			}
			valid = append(valid, map[string]string{"containerID": id, "ifname": ifname})
		}
		if valid == nil {
			valid = []map[string]string{}
		}
		return eachPlugin(ctx, list, paths, "GC", map[string]interface{}{
			"cni.dev/valid-attachments": valid,
		})
	case "status":
		return eachPlugin(ctx, list, paths, "STATUS", nil)
	}
	return fmt.Errorf("unknown verb %q", verb)
}

// eachPlugin runs command on every plugin of the list in order, with the
// list's name and cniVersion 1.1.0 injected (plus extra), as libcni 1.2's
// GCNetworkList and GetStatusNetworkList do; the first error stops.
func eachPlugin(ctx context.Context, list *libcni.NetworkConfigList, paths []string, command string, extra map[string]interface{}) error {
	for _, plugin := range list.Plugins {
		inject := map[string]interface{}{"name": list.Name, "cniVersion": "1.1.0"}
		for k, v := range extra {
			inject[k] = v
		}
		conf, err := libcni.InjectConf(plugin, inject)
		if err != nil {
			return err
		}
		binary, err := invoke.FindInPath(plugin.Network.Type, paths)
		if err != nil {
			return err
		}
		invokeArgs := &invoke.Args{Command: command, Path: strings.Join(paths, ":")}
		if err := invoke.ExecPluginWithoutResult(ctx, binary, conf.Bytes, invokeArgs, nil); err != nil {
			if out, jerr := json.Marshal(err); jerr == nil && string(out) != "{}" {
				return fmt.Errorf("%s", out)
			}
			return err
		}
	}
	return nil
}
