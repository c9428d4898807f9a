// The package's entry for AssemblyScript (`import … from "@corral/plugin-as"`).
export * from "./assembly/index";
