#include "cli.h"
namespace gatehouse::cli {
void RegisterAdminCommands(std::vector<Command>*) {}
}  // namespace gatehouse::cli
