// The examples' command lines, one way for all of them: `--help` (or `-h`)
// prints the usage and exits 0; an unknown option, a missing value, a bad
// number or a surplus argument prints the usage to stderr and exits 2.
//
//   example::CommandLine cli("jaiminho-iot-gateway", "[--db DIR] [--readings N]", "What it does.");
//   cli.Option("--db", "DIR", "database directory", [&](const std::string& v) { db = v; });
//   cli.Option("--readings", "N", "readings per sensor", [&](const std::string& v) { n = cli.Int("--readings", v, 3);
//   }); cli.Flag("--verbose", "print more", [&] { verbose = true; });   // no value
//   cli.Parse(argc, argv);
#pragma once

#include <charconv>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace example {

class CommandLine {
 public:
  using Setter = std::function<void(const std::string&)>;

  CommandLine(std::string program, std::string synopsis, std::string description)
      : program_(std::move(program)), synopsis_(std::move(synopsis)), description_(std::move(description)) {}

  // An option that takes a value: `--name VALUE`.
  void Option(std::string name, std::string value_name, std::string help, Setter set) {
    options_.push_back({std::move(name), std::move(value_name), std::move(help), std::move(set)});
  }
  // An option without a value: `--name`.
  void Flag(std::string name, std::string help, std::function<void()> set) {
    options_.push_back({std::move(name), "", std::move(help), [set = std::move(set)](const std::string&) { set(); }});
  }
  // A positional argument (optional, in order).
  void Positional(std::string name, std::string help, Setter set) {
    positionals_.push_back({std::move(name), "", std::move(help), std::move(set)});
  }

  void Parse(int argc, char** argv) {
    size_t next_positional = 0;
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        PrintUsage(std::cout);
        std::exit(0);
      }
      if (arg.size() > 1 && arg[0] == '-') {
        const Entry* option = nullptr;
        for (const auto& o : options_) {
          if (o.name == arg) option = &o;
        }
        if (option == nullptr) Fail("unknown option " + arg);
        if (option->value_name.empty()) {  // a Flag
          option->set("");
          continue;
        }
        if (i + 1 >= argc) Fail(arg + " needs a value (" + option->value_name + ")");
        option->set(argv[++i]);
        continue;
      }
      if (next_positional >= positionals_.size()) Fail("unexpected argument '" + arg + "'");
      positionals_[next_positional++].set(arg);
    }
  }

  // `value` as an integer >= min, or exit 2 naming the option.
  int Int(const std::string& what, const std::string& value, int min) const {
    int out = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
    if (ec != std::errc() || end != value.data() + value.size() || out < min) {
      Fail(what + " must be a whole number >= " + std::to_string(min) + ", got '" + value + "'");
    }
    return out;
  }

  [[noreturn]] void Fail(const std::string& why) const {
    std::cerr << program_ << ": " << why << "\n";
    PrintUsage(std::cerr);
    std::exit(2);
  }

 private:
  struct Entry {
    std::string name, value_name, help;
    Setter set;
  };

  void PrintUsage(std::ostream& out) const {
    out << "usage: " << program_ << " " << synopsis_ << "\n\n" << description_ << "\n";
    for (const auto& p : positionals_)
      out << "  " << p.name << "  " << p.help << "\n";
    for (const auto& o : options_)
      out << "  " << o.name << (o.value_name.empty() ? "" : " ") << o.value_name << "  " << o.help << "\n";
    out << "  --help  this text\n";
  }

  std::string program_, synopsis_, description_;
  std::vector<Entry> options_;
  std::vector<Entry> positionals_;
};

}  // namespace example
