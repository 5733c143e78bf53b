{
  "targets": [
    {
      "target_name": "tsrun",
      "sources": ["native/addon.cc", "native/executor.cc", "native/seccomp.cc", "native/nsbench.cc", "native/engine.cc", "native/engine_wire.cc"],
      "libraries": ["-lseccomp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-fexceptions"]
    },
    {
      "target_name": "tsrun-launcher",
      "type": "executable",
      "sources": ["native/launcher.cc", "native/engine_wire.cc", "native/executor.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      # Fully static: every tsrun command execs it, and its spawner is a fork
      # of it; without ld.so and libc's mappings a warm `run` took 0.5 ms less.
      "ldflags": ["-static", "-s"]
    },
    {
      "target_name": "tsrun-init",
      "type": "executable",
      "sources": ["native/init-main.cc", "native/executor.cc"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "ldflags": ["-static"]
    },
    {
      "target_name": "tsrun-monitor",
      "type": "executable",
      "sources": ["native/monitor.cc"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Os"],
      "ldflags": ["-static", "-s"]
    }
  ]
}
