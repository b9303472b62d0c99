//! The macros a plugin expands: [`export_plugin!`](crate::export_plugin)
//! and its helper, which write the plugin's descriptor symbol and an
//! `extern "C"` trampoline around each handler and initializer, calling the
//! glue in `export.rs` through `__private`. `#[macro_export]` puts both at
//! the crate root, where plugins name them.

/// Exports a plugin: the descriptor symbol `fnhost_plugin_descriptor` with
/// its handler and initializer tables, panic-safe `extern "C"` trampolines
/// around each function, and (unless `global_allocator: false` is given) the
/// [`CountingAllocator`](crate::alloc::CountingAllocator) that measures each
/// invocation's memory.
///
/// Handlers are `fn(&[u8], &Context) -> Result<R, HandlerError>`, or take a
/// parsed payload instead of bytes (`fn(ApigEvent, &Context)`, any
/// [`events`](crate::events) type, or [`Json<T>`](crate::Json)), where `R` is
/// any [`IntoOutput`](crate::IntoOutput); initializers are
/// `fn(&Context) -> Result<(), E>`; `E` is [`HandlerError`](crate::HandlerError) or an error type
/// of your own that implements [`ErrorType`](crate::ErrorType). Use it once, at the crate root
/// of a `cdylib`.
///
/// ```ignore
/// fnhost_api::export_plugin! {
///     handlers: { "Handler" => handler, "Other" => other },
///     initializers: { "Init" => init },
/// }
/// ```
#[macro_export]
macro_rules! export_plugin {
    (
        handlers: { $($hname:literal => $hfn:path),+ $(,)? }
        $(, initializers: { $($iname:literal => $ifn:path),* $(,)? })?
        , global_allocator: false $(,)?
    ) => {
        $crate::__export_descriptor! {
            handlers: { $($hname => $hfn),+ }
            initializers: { $($($iname => $ifn),*)? }
        }
    };
    (
        handlers: { $($hname:literal => $hfn:path),+ $(,)? }
        $(, initializers: { $($iname:literal => $ifn:path),* $(,)? })?
        $(,)?
    ) => {
        #[global_allocator]
        static __FNHOST_GLOBAL_ALLOCATOR: $crate::alloc::CountingAllocator =
            $crate::alloc::CountingAllocator::new();
        $crate::__export_descriptor! {
            handlers: { $($hname => $hfn),+ }
            initializers: { $($($iname => $ifn),*)? }
        }
    };
}

/// Implementation detail of [`export_plugin!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __export_descriptor {
    (
        handlers: { $($hname:literal => $hfn:path),+ }
        initializers: { $($iname:literal => $ifn:path),* }
    ) => {
        const _: () = {
            use $crate::abi as __abi;

            const __HANDLER_COUNT: usize = <[&str]>::len(&[$($hname),+]);
            const __INITIALIZER_COUNT: usize = <[&str]>::len(&[$($iname),*]);

            static __HANDLERS: [__abi::HandlerEntry; __HANDLER_COUNT] = [$(
                __abi::HandlerEntry {
                    name: __abi::PluginStr::from_static($hname),
                    handler: Some({
                        unsafe extern "C-unwind" fn __trampoline(
                            ctx: *const __abi::Context,
                            payload: __abi::HostStr,
                        ) -> i32 {
                            // SAFETY: called by the host under the handler contract.
                            unsafe { $crate::__private::run_handler(ctx, payload, $hfn) }
                        }
                        __trampoline
                    }),
                    event: __abi::PluginStr::from_static($crate::__private::event_of(&$hfn)),
                }
            ),+];

            static __INITIALIZERS: [__abi::InitializerEntry; __INITIALIZER_COUNT] = [$(
                __abi::InitializerEntry {
                    name: __abi::PluginStr::from_static($iname),
                    initializer: Some({
                        unsafe extern "C-unwind" fn __trampoline(ctx: *const __abi::Context) -> i32 {
                            // SAFETY: called by the host under the initializer contract.
                            unsafe { $crate::__private::run_initializer(ctx, $ifn) }
                        }
                        __trampoline
                    }),
                }
            ),*];

            #[unsafe(export_name = "fnhost_plugin_descriptor")]
            pub static __FNHOST_PLUGIN_DESCRIPTOR: __abi::Descriptor = __abi::Descriptor {
                magic: __abi::DESCRIPTOR_MAGIC,
                abi_major: __abi::ABI_MAJOR,
                abi_minor: __abi::ABI_MINOR,
                descriptor_size: ::core::mem::size_of::<__abi::Descriptor>() as u64,
                plugin_name: __abi::PluginStr::from_static(env!("CARGO_PKG_NAME")),
                sdk: __abi::PluginStr::from_static($crate::SDK_ID),
                handlers: __HANDLERS.as_ptr(),
                handler_count: __HANDLER_COUNT,
                initializers: __INITIALIZERS.as_ptr(),
                initializer_count: __INITIALIZER_COUNT,
                layout: __abi::LAYOUT.as_ptr(),
                layout_count: __abi::LAYOUT.len(),
                handler_entry_size: ::core::mem::size_of::<__abi::HandlerEntry>() as u32,
                initializer_entry_size: ::core::mem::size_of::<__abi::InitializerEntry>() as u32,
                layout_entry_size: ::core::mem::size_of::<__abi::TypeLayout>() as u32,
                field_entry_size: ::core::mem::size_of::<__abi::FieldLayout>() as u32,
            };
        };
    };
}
