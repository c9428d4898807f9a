// The guest ABI's exports: a plugin's entry file re-exports them with
//     export * from "@corral/plugin-as/abi";
export * from "./assembly/abi";
