// jaiminho-tool: see README.md ("jaiminho-tool") and src/tool/commands.h.
#include "tool/commands.h"

int main(int argc, char** argv) {
  return jaiminho::tool::Main(argc, argv);
}
